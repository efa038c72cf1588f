"""The patient's consents as the page lists them: the EHR's Consent resources and the app's own records; and each
program's enrollment status, which follows them and the offers and declines recorded in the app."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from smart_app.ehr.facts import APP_CONSENT, map_consents
from smart_app.ledger.consents import ConsentRecord
from smart_app.ledger.enrollment import (
    EnrollmentRecord,
    ProgramEnrollment,
    app_consent_marks,
    ehr_consent_marks,
    enrollment_statuses,
    event_marks,
)
from smart_app.rules.facts import Consent
from smart_app.statuses import ConsentKind

# FHIR Consent.status values under which a consent still holds.
HOLDING = {"active"}


@dataclass(frozen=True)
class ListedConsent:
    """One program's consent, wherever it is kept."""

    program: str
    on: dt.date
    method: str  # verbal | written | not stated
    recorded_by: str
    source: str  # "EHR" | "app"
    active: bool
    status: str
    # The app's own row, for the withdrawal form; None for the EHR's.
    record: ConsentRecord | None = None


def _method(resource: dict) -> str:
    """Verbal or written as the EHR's text says it; FHIR R4 Consent has no element of its own for it."""
    texts = [str((resource.get("policyRule") or {}).get("text") or ""),
             str((resource.get("scope") or {}).get("text") or ""), str(resource.get("text", {}).get("div") or "")]
    said = " ".join(texts).lower()
    if "written" in said or resource.get("sourceAttachment") or resource.get("sourceReference"):
        return "written"
    return "verbal" if "verbal" in said else "not stated"


def _recorder(resource: dict) -> str:
    # R4 Consent names who agreed (performer: usually the patient) and the organization, not who entered it.
    orgs = [o.get("display") for o in resource.get("organization") or [] if isinstance(o, dict) and o.get("display")]
    return f"in the EHR at {orgs[0]}" if orgs else "in the EHR (who recorded it is not stated)"


def ehr_consents(resources: Iterable[dict]) -> list[ListedConsent]:
    """The EHR's consents, one per program, leaving out the ones this app wrote (its own rows list those)."""
    listed: list[ListedConsent] = []
    for resource in resources:
        if any(i.get("system") == APP_CONSENT for i in resource.get("identifier") or [] if isinstance(i, dict)):
            continue
        for consent in map_consents([resource], []):
            listed.append(ListedConsent(program=consent.program, on=consent.date, method=_method(resource),
                                        recorded_by=_recorder(resource), source="EHR",
                                        active=consent.status in HOLDING, status=consent.status))
    return listed


def app_consents(records: Sequence[ConsentRecord]) -> list[ListedConsent]:
    """The consents recorded in the app (withdrawals show as the status of the consent they end)."""
    return [ListedConsent(program=r.program, on=r.obtained_on, method=r.method, recorded_by=r.obtained_by,
                          source="app", active=r.active, status="active" if r.active else "withdrawn", record=r)
            for r in records if r.kind == ConsentKind.CONSENT]


def listed_consents(resources: Iterable[dict], records: Sequence[ConsentRecord]) -> tuple[ListedConsent, ...]:
    """Every consent on file, newest first."""
    return tuple(sorted(ehr_consents(resources) + app_consents(records), key=lambda c: c.on, reverse=True))


def programs_without_consent(programs: Sequence[str], listed: Sequence[ListedConsent]) -> list[str]:
    """The programs a new consent may be recorded for: those with no active consent in the EHR or the app."""
    held = {c.program for c in listed if c.active}
    return [p for p in programs if p not in held]


def enrollment_on_file(programs: Sequence[str], listed: Sequence[ListedConsent], records: Sequence[ConsentRecord],
                       events: Sequence[EnrollmentRecord]) -> tuple[ProgramEnrollment, ...]:
    """Each program's enrollment status: the app's offers and declines, its consents and the EHR's."""
    ehr = [Consent(c.program, c.status, c.on) for c in listed if c.source == "EHR"]
    return enrollment_statuses(programs, [*event_marks(events), *app_consent_marks(records), *ehr_consent_marks(ehr)])


def programs_to_offer(missing: Sequence[str], enrollment: Sequence[ProgramEnrollment]) -> list[str]:
    """The programs the consent form offers by default: without consent, and not declined or not a candidate."""
    held_back = {e.program for e in enrollment if not e.offered_consent}
    return [p for p in missing if p not in held_back]
