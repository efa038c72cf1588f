"""From a month's decision to the claim a biller reviews: pure, deterministic arithmetic."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from smart_app.billing.values import ClaimLine, ConsentEvidence, Diagnosis, Performer, ProposedClaim
from smart_app.launch.organizations import Organization
from smart_app.ledger.months import Month
from smart_app.ledger.values import Entry
from smart_app.rules.decision import Decision
from smart_app.rules.facts import PatientFacts

# Where the organization's file says nothing: bill on the last day of the service month.
DEFAULT_SERVICE_DATE = "month-end"


@dataclass(frozen=True)
class PatientInfo:
    """Who the patient is, as the EHR last said, and their Coverage reference if any."""

    name: str = ""
    birth_date: str | None = None
    mrn: str | None = None
    coverage: str | None = None


def _service_date(policy: str, month: str, entry_ids: tuple[str, ...], entries: dict[str, Entry],
                  tz: ZoneInfo) -> dt.date:
    if policy == "threshold-met":
        # The code's minutes are the chronological slice the rules used; the last of them met it.
        dates = [entries[i].start.astimezone(tz).date() for i in entry_ids if i in entries]
        if dates:
            return max(dates)
    return Month.parse(month).last_day


def _diagnoses(decision: Decision, facts: PatientFacts, programs: set[str]) -> tuple[Diagnosis, ...]:
    by_id = {c.id: c for c in facts.conditions if c.id}
    out: dict[str, Diagnosis] = {}
    for program in decision.programs:
        if program.program not in programs:
            continue
        for item in program.evidence:
            condition = by_id.get(item.id or "") if item.kind == "condition" else None
            if condition and condition.code and condition.code not in out:
                out[condition.code] = Diagnosis(code=condition.code, system=condition.system or "",
                                                display=condition.display or "", condition_id=condition.id)
    return tuple(out.values())


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


def _performers(org: Organization, used: set[str], entries: dict[str, Entry]) -> tuple[Performer, ...]:
    minutes: dict[tuple[str, str], int] = defaultdict(int)
    for entry_id in sorted(used):
        entry = entries.get(entry_id)
        if entry is not None:
            minutes[(entry.performer, entry.role)] += entry.minutes
    people = [Performer(reference=ref, role=role, minutes=m) for (ref, role), m in sorted(minutes.items())]
    if org.billing_practitioner and not any(p.reference == org.billing_practitioner for p in people):
        people.append(Performer(reference=org.billing_practitioner, role="billing-practitioner"))
    return tuple(people)


def propose_claim(decision: Decision, facts: PatientFacts, entries: tuple[Entry, ...], org: Organization,
                  patient_id: str, patient: PatientInfo) -> ProposedClaim:
    """The claim for a patient-month: billed codes, the minutes and people behind them, the evidence."""
    tz = ZoneInfo(org.timezone)
    by_id = {e.id: e for e in entries}
    policy = str(org.extra.get("service_date", DEFAULT_SERVICE_DATE))
    billed = decision.billed()
    lines = tuple(ClaimLine(
        code=c.code, units=c.units, program=c.program, descriptor=c.descriptor, minutes=c.minutes,
        minutes_by_role=dict(c.minutes_by_role),
        service_date=_service_date(policy, decision.month, c.entry_ids, by_id, tz),
        rate=c.rate, rate_year=c.rate_year, entry_ids=c.entry_ids) for c in billed)
    programs = {p.program for p in decision.programs if p.codes}
    used = {i for c in billed for i in c.entry_ids}
    late = tuple(sorted(e.id for e in entries if e.late and e.id in used))
    warnings = claim_warnings(decision, late)
    evidence = tuple(f"{p.program}: {item.kind} {item.id or ''} {item.date or ''} {item.detail}".strip()
                     for p in decision.programs if p.codes for item in p.evidence)
    return ProposedClaim(
        organization_id=org.id, patient_id=patient_id, month=decision.month, lines=lines,
        diagnoses=_diagnoses(decision, facts, programs), performers=_performers(org, used, by_id),
        consents=_consents(decision, facts, programs), billing_practitioner=org.billing_practitioner,
        supervising_practitioner=org.supervising_practitioner or org.billing_practitioner,
        place_of_service=org.place_of_service, coverage=patient.coverage, patient_name=patient.name,
        patient_birth_date=patient.birth_date, patient_mrn=patient.mrn,
        warnings=warnings, evidence=evidence, late_entries=late,
        decision=decision.to_json())


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
