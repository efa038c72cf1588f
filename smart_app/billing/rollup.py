"""The month-end rollup: every patient with time, consent or a checked status that month, evaluated
with fresh facts and stored as a claim version. Patients are streamed, so memory stays flat."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from smart_app.billing.claims import store_claim
from smart_app.billing.facts_source import cached_facts, coverage_reference, save_facts
from smart_app.billing.proposal import PatientInfo, propose_claim
from smart_app.db import transaction
from smart_app.ehr.capabilities import EhrCapabilities, fetch_capabilities
from smart_app.ehr.chart import chart_summary
from smart_app.ehr.facts import facts_from_record
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.record import fetch_record
from smart_app.errors import EhrError, SmartAppError
from smart_app.launch.backend import backend_token
from smart_app.launch.organizations import Organization
from smart_app.ledger.directory import remember_patient
from smart_app.ledger.facts_merge import time_entries, with_app_records
from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.queries import patient_month
from smart_app.ledger.records import ConsentRow, MonthStatusRow, PatientRow
from smart_app.rules.evaluate import evaluate
from smart_app.rules.facts import PatientFacts
from smart_app.rules.loader import rule_set_named
from smart_app.services import AppContext

SOURCES = ("ehr", "cache")


@dataclass
class RollupReport:
    """What a rollup did, patient by patient."""

    month: str
    patients: int = 0
    new_versions: int = 0
    unchanged: int = 0
    billable: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


def _patients_query(organization_id: str, month: str):  # noqa: ANN202 - a SQLAlchemy selectable
    return union(
        select(TimeEntryRow.patient_id).where(TimeEntryRow.organization_id == organization_id,
                                              TimeEntryRow.month == month),
        select(ConsentRow.patient_id).where(ConsentRow.organization_id == organization_id),
        select(MonthStatusRow.patient_id).where(MonthStatusRow.organization_id == organization_id,
                                                MonthStatusRow.month == month),
    ).subquery()


def count_patients(db: Session, organization_id: str, month: str) -> int:
    """How many patients the rollup of a month will evaluate."""
    return int(db.scalar(select(func.count()).select_from(_patients_query(organization_id, month))) or 0)


def patient_ids(db: Session, organization_id: str, month: str, batch: int = 500) -> Iterator[str]:
    """Patient ids with time, a consent or an evaluated status in the month, in a stable order, streamed."""
    query = _patients_query(organization_id, month)
    result = db.execute(select(query.c.patient_id).order_by(query.c.patient_id).execution_options(
        yield_per=batch))
    for (patient_id,) in result:
        yield patient_id


async def _fresh_facts(app: AppContext, org: Organization, client: FhirClient, caps: EhrCapabilities,
                       patient_id: str, month: str, scales: tuple[str, ...]) -> tuple[PatientFacts, PatientInfo]:
    record = await fetch_record(client, caps, patient_id, month, None, scales, org.timezone)
    facts = facts_from_record(record, month)
    summary = chart_summary(record)
    info = PatientInfo(summary.name, summary.birth_date, summary.mrn, coverage_reference(record))
    with transaction(app.sessions) as db:
        save_facts(db, org.id, patient_id, month, facts, info.coverage)
        existing = db.get(PatientRow, (org.id, patient_id))
        remember_patient(db, org.id, patient_id, name=info.name, birth_date=info.birth_date, mrn=info.mrn,
                         care_manager=existing.care_manager if existing else None,
                         care_manager_name=existing.care_manager_name if existing else None)
    return facts, info


def _cached(db: Session, org: Organization, patient_id: str, month: str) -> tuple[PatientFacts, PatientInfo]:
    found = cached_facts(db, org.id, patient_id, month)
    if found is None:
        raise EhrError(f"No facts from the EHR are saved for patient {patient_id} in {month}.",
                       "Run the rollup with --source ehr (Backend Services), or open the patient's chart once.")
    facts, coverage, _ = found
    person = db.get(PatientRow, (org.id, patient_id))
    info = PatientInfo(person.name if person else "", person.birth_date if person else None,
                       person.mrn if person else None, coverage)
    return facts, info


async def run_rollup(app: AppContext, org: Organization, month: str, *, source: str = "ehr",
                     progress: Callable[[int, int, str], None] | None = None) -> RollupReport:
    """Evaluate every patient of the month and store changed claims; safe to re-run at any time."""
    if source not in SOURCES:
        raise SmartAppError(f"Unknown facts source {source!r}.", f"Use one of {', '.join(SOURCES)}.")
    rule_set = rule_set_named(org.rule_set)
    report = RollupReport(month=month)
    client = caps = None
    if source == "ehr":
        token = await backend_token(app.launch, org)
        client = FhirClient(app.http, org.issuer, token)
        caps, _ = await fetch_capabilities(app.http, org.issuer)
    with transaction(app.sessions) as db:
        total = count_patients(db, org.id, month)
    reader = app.sessions()
    try:
        for patient_id in patient_ids(reader, org.id, month):
            report.patients += 1
            try:
                if client is not None and caps is not None:
                    ehr_facts, info = await _fresh_facts(app, org, client, caps, patient_id, month,
                                                         rule_set.scale_loinc_codes())
                else:
                    with transaction(app.sessions) as db:
                        ehr_facts, info = _cached(db, org, patient_id, month)
                with transaction(app.sessions) as db:
                    facts = with_app_records(db, org.id, patient_id, org.timezone, ehr_facts)
                    entries = patient_month(db, org.id, patient_id, month).entries
                    decision = evaluate(facts, time_entries(entries, org.timezone), rule_set, month=month)
                    claim = propose_claim(decision, facts, entries, org, patient_id, info)
                    outcome, _ = store_claim(db, claim)
                report.new_versions += outcome == "new"
                report.unchanged += outcome == "unchanged"
                report.billable += claim.billable
            except SmartAppError as exc:
                # One patient's EHR trouble must not lose the rest of the month; it is reported.
                report.errors.append((patient_id, str(exc)))
            if progress is not None:
                progress(report.patients, total, patient_id)
    finally:
        reader.close()
    return report
