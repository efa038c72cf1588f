"""From a month's decision to the claim a biller reviews: pure, deterministic arithmetic."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from smart_app.billing.values import ClaimLine, ConsentEvidence, Diagnosis, LoggedTime, Performer, ProposedClaim
from smart_app.ehr.names import PractitionerDetails
from smart_app.launch.organizations import Organization
from smart_app.ledger.care_plans import CARE_PLAN_PROGRAMS, plan_in_force_named
from smart_app.ledger.months import Month
from smart_app.ledger.values import Entry
from smart_app.rules.decision import Decision
from smart_app.rules.facts import Condition, PatientFacts

# Where the organization's file says nothing: bill on the last day of the service month.
DEFAULT_SERVICE_DATE = "month-end"


@dataclass(frozen=True)
class PatientInfo:
    """Who the patient is, as the EHR last said, and their Coverage reference if any."""

    name: str = ""
    birth_date: str | None = None
    mrn: str | None = None
    coverage: str | None = None
    mbi: str | None = None


# How a claim's evidence names the care plan in force (the superbill shows it under its own heading).
CARE_PLAN_EVIDENCE = "care plan: "

def _face_to_face(decision: Decision, facts: PatientFacts, program: str) -> dt.date | None:
    """TCM's date of service: the face-to-face visit of the discharge the decision rests on (CMS MLN908628)."""
    by_id = {d.id: d for d in facts.discharges if d.id}
    for item in next((p.evidence for p in decision.programs if p.program == program), ()):
        discharge = by_id.get(item.id or "") if item.kind == "discharge" else None
        if discharge is not None and discharge.face_to_face_date is not None:
            return discharge.face_to_face_date
    return None


def _service_date(policy: str, month: str, entry_ids: tuple[str, ...], entries: dict[str, Entry],
                  tz: ZoneInfo, visit: dt.date | None, today: dt.date | None) -> dt.date:
    """The line's date of service; never after `today`, since a claim cannot bill a day still to come."""
    day = Month.parse(month).last_day
    if visit is not None:
        day = visit
    elif policy == "threshold-met":
        # The code's minutes are the chronological slice the rules used; the last of them met it.
        dates = [entries[i].start.astimezone(tz).date() for i in entry_ids if i in entries]
        if dates:
            day = max(dates)
    return min(day, today) if today is not None else day


_ACTIVE = ("active", "recurrence", "relapse")


def _diagnoses(decision: Decision, facts: PatientFacts, programs: set[str]) -> tuple[Diagnosis, ...]:
    """The qualifying conditions of each billed program; a program whose evidence names none (TCM) points at the
    patient's active, confirmed coded problems, so no line goes out without a diagnosis."""
    by_id = {c.id: c for c in facts.conditions if c.id}
    found: dict[str, Diagnosis] = {}
    users: dict[str, list[str]] = defaultdict(list)

    def add(condition: object, program: str) -> None:
        if not isinstance(condition, Condition) or not condition.code:
            return
        found.setdefault(condition.code, Diagnosis(code=condition.code, system=condition.system or "",
                                                   display=condition.display or "", condition_id=condition.id))
        if program not in users[condition.code]:
            users[condition.code].append(program)

    for program in decision.programs:
        if program.program not in programs:
            continue
        named = [by_id.get(item.id or "") for item in program.evidence if item.kind == "condition"]
        if not any(named):
            named = [c for c in facts.conditions if (c.clinical_status or "active") in _ACTIVE
                     and c.verification_status not in ("entered-in-error", "refuted")]
        for condition in named:
            add(condition, program.program)
    return tuple(dataclasses.replace(d, programs=tuple(users[code])) for code, d in found.items())


def _consents(decision: Decision, facts: PatientFacts, programs: set[str]) -> tuple[ConsentEvidence, ...]:
    by_id = {c.id: c for c in facts.consents if c.id}
    out = []
    for program in decision.programs:
        if program.program not in programs:
            continue
        for item in program.evidence:
            consent = by_id.get(item.id or "") if item.kind == "consent" else None
            if consent is not None:
                out.append(ConsentEvidence(program=consent.program, date=consent.date, consent_id=consent.id,
                                           source=consent.source.value))
    return tuple(dict.fromkeys(out))


def _performers(org: Organization, log: tuple[LoggedTime, ...],
                people: Mapping[str, PractitionerDetails]) -> tuple[Performer, ...]:
    """Everyone whose minutes count on the claim (the minutes that count), then the billing and supervising
    practitioners, each with the name, credentials and NPI the EHR gave."""
    minutes: dict[tuple[str, str], int] = defaultdict(int)
    for item in log:
        counted = sum(m for _, m in item.counted)
        if counted:
            minutes[(item.performer, item.role)] += counted

    def person(reference: str, role: str, mins: int = 0) -> Performer:
        known = people.get(reference) or PractitionerDetails(reference)
        return Performer(reference=reference, role=role, minutes=mins, name=known.name,
                         credentials=known.credentials, npi=known.npi)

    out = [person(ref, role, m) for (ref, role), m in sorted(minutes.items())]
    for reference, role in ((org.billing_practitioner, "billing-practitioner"),
                            (org.supervising_practitioner, "supervising-practitioner")):
        if reference and not any(p.reference == reference for p in out):
            out.append(person(reference, role))
    return tuple(out)


def _why_not(entry: Entry, program: str, billed: set[str], consent: dt.date | None, day: dt.date,
             counted_roles: set[str]) -> str:
    if program not in billed:
        return f"{program_label(program)} is not billable this month"
    if consent is not None and day < consent:
        return f"dated before consent ({consent.isoformat()})"
    if entry.role not in counted_roles:
        return f"{entry.role} time does not count toward these codes"
    return "beyond the units billed (the cap, or short of the next unit)"


def program_label(program: str) -> str:
    """The program as people call it ("ccm" -> "CCM", "complex_ccm" -> "Complex CCM")."""
    return "Complex CCM" if program == "complex_ccm" else program.upper()


def _consent_start(facts: PatientFacts, program: str) -> dt.date | None:
    dates = [c.date for c in facts.consents if c.program in (program, program.rsplit("_", 1)[-1])
             and c.status == "active"]
    return min(dates) if dates else None


def time_log(decision: Decision, facts: PatientFacts, entries: tuple[Entry, ...], tz: ZoneInfo,
             people: Mapping[str, PractitionerDetails]) -> tuple[LoggedTime, ...]:
    """Every effective entry of the month with the code(s) its minutes count toward, and why the rest do not.

    The rules bill each code a chronological slice of its program's counted minutes (base code first, then the
    add-on: `evaluate.billed`); walking the billed entries in the same order gives each minute its code.
    """
    lines_of: dict[str, list] = defaultdict(list)
    for code in decision.billed():
        lines_of[code.program].append(code)
    billed_programs = {p.program for p in decision.programs if p.codes}
    # What is billed under complex CCM is logged as CCM time.
    by_time_program: dict[str, str] = {}
    for program in billed_programs:
        by_time_program.setdefault(program.rsplit("_", 1)[-1], program)
    counts: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for codes in lines_of.values():
        ids = {i for c in codes for i in c.entry_ids}
        ordered = [e for e in entries if e.id in ids]
        slices = [(c.code, c.minutes) for c in codes if c.minutes]
        pos = 0
        for entry in ordered:
            lo, hi = pos, pos + entry.minutes
            start = 0
            for code, mins in slices:
                a, b = max(lo, start), min(hi, start + mins)
                if b > a:
                    counts[entry.id].append((code, b - a))
                start += mins
            pos = hi
    out = []
    for entry in entries:
        local = entry.start.astimezone(tz)
        program = by_time_program.get(entry.program, entry.program)
        counted = tuple(counts.get(entry.id, ()))
        rest = entry.minutes - sum(m for _, m in counted)
        roles = {role for c in lines_of.get(program, ()) for role, m in c.minutes_by_role if m}
        why = _why_not(entry, program, billed_programs, _consent_start(facts, program), local.date(),
                       roles) if rest > 0 else ""
        if rest > 0 and program in lines_of and not any(c.minutes for c in lines_of[program]):
            why = f"{program_label(program)} is billed by the month, not by minutes"
        name = (people.get(entry.performer) or PractitionerDetails(entry.performer)).name
        out.append(LoggedTime(
            entry_id=entry.id, date=local.date().isoformat(), start=local.strftime("%H:%M"),
            end=entry.end.astimezone(tz).strftime("%H:%M"), minutes=entry.minutes, program=entry.program,
            activity=entry.activity, performer=entry.performer, role=entry.role, note=entry.note,
            performer_name=name, counted=counted, not_counted=max(rest, 0), why_not=why))
    return tuple(out)


def propose_claim(decision: Decision, facts: PatientFacts, entries: tuple[Entry, ...], org: Organization,
                  patient_id: str, patient: PatientInfo, *, today: dt.date | None = None,
                  people: Mapping[str, PractitionerDetails] | None = None) -> ProposedClaim:
    """The claim for a patient-month: billed codes, the minutes and people behind them, the evidence.

    `today` (the organization's date) caps every date of service; `people` are the practitioners as the EHR
    describes them, by reference.
    """
    tz = ZoneInfo(org.timezone)
    people = people or {}
    by_id = {e.id: e for e in entries}
    policy = str(org.extra.get("service_date", DEFAULT_SERVICE_DATE))
    billed = decision.billed()
    lines = tuple(ClaimLine(
        code=c.code, units=c.units, program=c.program, descriptor=c.descriptor, minutes=c.minutes,
        minutes_by_role=dict(c.minutes_by_role),
        service_date=_service_date(policy, decision.month, c.entry_ids, by_id, tz,
                                   _face_to_face(decision, facts, c.program) if c.program == "tcm" else None,
                                   today),
        rate=c.rate, rate_year=c.rate_year, entry_ids=c.entry_ids) for c in billed)
    programs = {p.program for p in decision.programs if p.codes}
    used = {i for c in billed for i in c.entry_ids}
    log = time_log(decision, facts, entries, tz, people)
    diagnoses = _diagnoses(decision, facts, programs)
    late = tuple(sorted(e.id for e in entries if e.late and e.id in used))
    warnings = list(claim_warnings(decision, late))
    visit = _face_to_face(decision, facts, "tcm")
    not_before = None
    if visit is not None and today is not None and visit > today and any(c.program == "tcm" for c in billed):
        not_before = visit
        warnings.append(f"TCM: the face-to-face visit ({visit.isoformat()}) is still to come; the claim may be "
                        "sent only once it took place")
    performers = _performers(org, log, people)
    if lines:
        pointed = {p for d in diagnoses for p in d.programs}
        warnings += [f"{line.code}: no diagnosis on file to point the line at" for line in lines
                     if line.program not in pointed]
        warnings += [f"no NPI on file in the EHR for {p.label} ({p.role})" for p in performers if not p.npi]
    evidence = tuple(f"{p.program}: {item.kind} {item.id or ''} {item.date or ''} {item.detail}".strip()
                     for p in decision.programs if p.codes for item in p.evidence)
    plan = plan_in_force_named(facts, Month.parse(decision.month).last_day)
    if plan and any(p.program in CARE_PLAN_PROGRAMS for p in decision.programs if p.codes):
        # The plan in force that month, named on the claim (CCM and PCM are billable only with one).
        evidence += (CARE_PLAN_EVIDENCE + plan,)
    return ProposedClaim(
        organization_id=org.id, patient_id=patient_id, month=decision.month, lines=lines,
        diagnoses=diagnoses, performers=performers,
        consents=_consents(decision, facts, programs), billing_practitioner=org.billing_practitioner,
        supervising_practitioner=org.supervising_practitioner or org.billing_practitioner,
        place_of_service=org.place_of_service, coverage=patient.coverage, patient_name=patient.name,
        patient_birth_date=patient.birth_date, patient_mrn=patient.mrn, patient_mbi=patient.mbi,
        warnings=tuple(dict.fromkeys(warnings + list(facts.findings))), evidence=evidence, late_entries=late,
        decision=decision.to_json(), time_log=log, not_before=not_before)


def _codes_text(codes: tuple[tuple[str, int], ...]) -> str:
    return " + ".join(code if units == 1 else f"{code} x{units}" for code, units in codes)


def claim_warnings(decision: Decision, late: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What the biller should know about the codes on this claim, each once, in plain words.

    Only the billed programs speak (another program's missing CoCM episode or QMB status is not this claim's
    business); a claim with nothing billable says instead why, for the programs that have minutes.
    """
    billed = [p for p in decision.programs if p.codes]
    out: list[str] = []
    for p in billed:
        out.extend(f"{p.title}: {w}" for w in p.warnings)
        others = [a for a in p.alternatives if not a.chosen and a.codes]
        if others:
            out.append(f"{p.title}: also billable as " + "; or ".join(_codes_text(a.codes) for a in others)
                       + f" (the rules picked {_codes_text(tuple((c.code, c.units) for c in p.codes))})")
    if not billed:
        out.extend(f"{p.title}: {r.reason}" for p in decision.programs if p.minutes_total
                   for r in p.reasons if r.kind != "minutes")
    if late:
        out.append(f"{len(late)} entr{'y' if len(late) == 1 else 'ies'} recorded after this patient's claim for "
                   "the month was approved (late): this is a corrected claim")
    return tuple(dict.fromkeys(out))


def approval_blockers(claim: ProposedClaim) -> tuple[str, ...]:
    """Why this claim's own evidence does not hold up, in plain words; empty when it may be approved."""
    out: list[str] = []
    for program in (claim.decision or {}).get("programs") or []:
        if program.get("codes"):
            out.extend(f"{program.get('title', '')}: {gap}" for gap in program.get("gaps") or ())
    if claim.not_before is not None:
        out.append(f"TCM: the face-to-face visit on {claim.not_before.isoformat()} is still to come; after it, run "
                   "the rollup again and approve the new version")
    if claim.lines and not claim.diagnoses:
        out.append("No diagnosis backs the codes on this claim: each line needs the condition it treats, from the "
                   "problem list")
    return tuple(dict.fromkeys(out))


def content_hash(claim: ProposedClaim) -> str:
    """A stable hash of what would be billed and why; re-running an unchanged month matches it."""
    return content_digest(claim.to_json())


def content_digest(content: dict) -> str:
    """`content_hash` of a claim whose JSON form (`ProposedClaim.to_json`) is already built."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
