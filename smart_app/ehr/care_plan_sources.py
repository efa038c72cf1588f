"""What the care-plan editor reads from the chart to seed a draft: active medication orders, allergies, the care
team and the last 12 months of visits, in one batch (or concurrently). A type the EHR refuses (403, 404) or fails
is a note on the page, never a failure of it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta

from smart_app.access.roles import CodeSource, RoleCode, RoleMapping, TimeRole
from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.record import FhirQuery, read_parts
from smart_app.ledger.care_plan_seed import ChartFacts, ChartLine, TeamMember
from smart_app.rules.facts import Condition

# How each part is named in a note when the EHR did not give it.
PART_NAMES = {"medications": "Medication orders (MedicationRequest)",
              "allergies": "Allergies (AllergyIntolerance)", "care_teams": "The care team (CareTeam)",
              "encounters": "Visits of the last 12 months (Encounter)"}
# Who may be on a care team besides the patient: people and the agencies they work for.
MEMBER_TYPES = ("Practitioner/", "PractitionerRole/", "Organization/", "RelatedPerson/")
INACTIVE_ALLERGY = ("inactive", "resolved")
NOT_HELD = ("refuted", "entered-in-error")
NOT_SEEN = ("planned", "cancelled", "entered-in-error")


def source_requests(patient_id: str, today: date) -> dict[str, FhirQuery]:
    """The searches the editor makes, by part name (typed patient references, as every read of the record)."""
    patient = f"Patient/{patient_id}"
    return {
        "medications": FhirQuery("MedicationRequest", (("patient", patient), ("status", "active"))),
        "allergies": FhirQuery("AllergyIntolerance", (("patient", patient),)),
        "care_teams": FhirQuery("CareTeam", (("patient", patient),)),
        "encounters": FhirQuery("Encounter", (("patient", patient),
                                              ("date", f"ge{(today - timedelta(days=365)).isoformat()}"))),
    }


def _day(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _concept(concept: object) -> str:
    """The words of a CodeableConcept: its text, else the first coding's display, else its code."""
    if not isinstance(concept, dict):
        return ""
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    return str(concept.get("text") or next((c.get("display") for c in codings if c.get("display")), None)
               or next((c.get("code") for c in codings if c.get("code")), None) or "")


def _code(concept: object) -> str | None:
    if not isinstance(concept, dict):
        return None
    return next((str(c["code"]) for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")), None)


def medication_lines(requests: Iterable[dict]) -> tuple[ChartLine, ...]:
    """Active medication orders: the medicine and its directions, newest first."""
    lines = []
    for request in requests:
        if request.get("status", "active") != "active" or request.get("intent") in ("proposal", "plan"):
            continue
        medicine = _concept(request.get("medicationCodeableConcept")) or str(
            (request.get("medicationReference") or {}).get("display") or "")
        if not medicine:
            continue
        directions = next((str(d.get("text")) for d in request.get("dosageInstruction") or []
                           if isinstance(d, dict) and d.get("text")), "")
        lines.append(ChartLine(f"{medicine}: {directions}" if directions else medicine, "MedicationRequest",
                               _day(request.get("authoredOn"))))
    return tuple(sorted(lines, key=lambda line: (line.on or date.min, line.text), reverse=True))


def allergy_lines(allergies: Iterable[dict]) -> tuple[ChartLine, ...]:
    """Allergies the patient has (not resolved, refuted or in error), with reactions and criticality."""
    lines = []
    for allergy in allergies:
        if _code(allergy.get("clinicalStatus")) in INACTIVE_ALLERGY or \
                _code(allergy.get("verificationStatus")) in NOT_HELD:
            continue
        what = _concept(allergy.get("code"))
        if not what:
            continue
        reactions = [_concept(m) for r in allergy.get("reaction") or [] if isinstance(r, dict)
                     for m in r.get("manifestation") or []]
        details = ", ".join(r for r in reactions if r)
        if allergy.get("criticality") == "high":
            details = f"{details}; high criticality" if details else "high criticality"
        lines.append(ChartLine(f"{what} ({details})" if details else what, "AllergyIntolerance",
                               _day(allergy.get("recordedDate") or allergy.get("onsetDateTime"))))
    return tuple(lines)


def team_lines(teams: Iterable[dict], mappings: Iterable[RoleMapping], time_roles: Mapping[str, str],
               billing_practitioner: str = "") -> tuple[TeamMember, ...]:
    """The members of the active care teams (the patient left out), each with a time role decided as
    `access.roles.resolve_roles` decides it: granted or seeded in the app (`time_roles`, label by reference), else
    the organization's mapping of the care-team role code, else the organization file's billing practitioner."""
    by_code = [m for m in mappings if m.source is CodeSource.CARE_TEAM and m.time_role is not None]
    members: dict[str, TeamMember] = {}
    for team in teams:
        if team.get("status", "active") not in ("active", "proposed"):
            continue
        for participant in team.get("participant") or []:
            member = participant.get("member") or {}
            reference = str(member.get("reference") or "")
            if not reference.startswith(MEMBER_TYPES) or reference in members:
                continue
            concepts = [c for c in participant.get("role") or [] if isinstance(c, dict)]
            codes = [RoleCode(CodeSource.CARE_TEAM, str(c.get("system") or ""), str(c["code"]),
                              str(c.get("display") or ""))
                     for concept in concepts for c in concept.get("coding") or [] if isinstance(c, dict)
                     and c.get("code")]
            mapped = next((m.time_role for m in by_code for c in codes if m.matches(c)), None)
            role = ", ".join(dict.fromkeys(text for text in (_concept(c) for c in concepts) if text))
            billing = TimeRole.BILLING_PRACTITIONER.label if reference == billing_practitioner else None
            members[reference] = TeamMember(str(member.get("display") or reference), role,
                                            time_roles.get(reference) or (mapped.label if mapped else billing))
    return tuple(members.values())


def visit_lines(encounters: Iterable[dict], today: date) -> tuple[ChartLine, ...]:
    """Visits of the last 12 months, newest first: what, with whom and where."""
    since = today - timedelta(days=365)
    lines = []
    for encounter in encounters:
        day = _day((encounter.get("period") or {}).get("start"))
        if encounter.get("status") in NOT_SEEN or day is None or not since <= day <= today:
            continue
        what = next((_concept(t) for t in encounter.get("type") or [] if _concept(t)), "") or _concept(
            encounter.get("serviceType")) or str((encounter.get("class") or {}).get("display") or "visit")
        who = [str((p.get("individual") or {}).get("display") or "") for p in encounter.get("participant") or []
               if isinstance(p, dict)]
        where = str((encounter.get("serviceProvider") or {}).get("display") or "")
        with_whom = ", ".join(dict.fromkeys(part for part in (*who, where) if part))
        lines.append(ChartLine(f"{day.isoformat()} {what}" + (f" ({with_whom})" if with_whom else ""),
                               "Encounter", day))
    return tuple(sorted(lines, key=lambda line: (line.on or date.min, line.text), reverse=True))


def chart_facts(results: Mapping[str, object], failures: Mapping[str, str], conditions: Iterable[Condition],
                today: date, mappings: Iterable[RoleMapping] = (),
                time_roles: Mapping[str, str] | None = None, billing_practitioner: str = "") -> ChartFacts:
    """The chart facts from the reads' results; a part that failed is None, with a note saying what and why."""
    def part(name: str) -> list[dict] | None:
        value = results.get(name)
        if name in failures or not isinstance(value, list):
            return None
        return [r for r in value if isinstance(r, dict)]

    medications, allergies, teams, encounters = (part(n) for n in PART_NAMES)
    unread = tuple(f"{PART_NAMES[name]} could not be read, so the draft has nothing from it: "
                   f"{failures[name].rstrip('.')}."
                   for name in PART_NAMES if name in failures)
    return ChartFacts(
        conditions=tuple(conditions),
        medications=None if medications is None else medication_lines(medications),
        allergies=None if allergies is None else allergy_lines(allergies),
        team=None if teams is None else team_lines(teams, mappings, time_roles or {}, billing_practitioner),
        visits=None if encounters is None else visit_lines(encounters, today),
        unread=unread)


async def fetch_chart_facts(client: FhirClient, caps: EhrCapabilities, patient_id: str, today: date,
                            conditions: Iterable[Condition], mappings: Iterable[RoleMapping] = (),
                            time_roles: Mapping[str, str] | None = None,
                            billing_practitioner: str = "") -> ChartFacts:
    """Read the sources in one round trip and make them chart facts (SessionExpired still ends the session)."""
    results, failures = await read_parts(client, caps, source_requests(patient_id, today))
    return chart_facts(results, failures, conditions, today, mappings, time_roles, billing_practitioner)
