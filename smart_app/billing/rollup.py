"""The month-end rollup: every patient with time, consent or a checked status that month, evaluated
with fresh facts and stored as a claim version. Patients are streamed, so memory stays flat.

Patients go in batches of `BATCH` (ranges of patient ids, claimed from the database: `batches.py`, so several
processes share one month and none evaluates a patient-month another holds): the batch's facts, directory
rows, ledger rows, their corrections and the newest claim versions are read with a handful of set-based
statements, each patient is evaluated in memory, and the batch's new claim versions are written in one
transaction. The app's own consents and attestations are read per patient only for the few patients that
have any.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import Subquery, and_, func, select, union
from sqlalchemy.orm import Session, defer

from smart_app.billing import batches
from smart_app.billing.claims import record_versions, store_version
from smart_app.billing.facts_source import cached_facts_many, coverage_reference, save_facts
from smart_app.billing.models import ClaimRow
from smart_app.billing.practitioners import known_people, month_people, read_people, save_people
from smart_app.billing.proposal import PatientInfo, propose_claim
from smart_app.db import in_thread, transaction, utcnow
from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.ehr.chart import chart_summary
from smart_app.ehr.facts import facts_from_record
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.names import PractitionerDetails, medicare_id
from smart_app.ehr.record import fetch_record
from smart_app.errors import EhrError, SmartAppError
from smart_app.launch.backend import backend_token
from smart_app.launch.ehr_metadata import cached_capabilities
from smart_app.launch.organizations import Organization
from smart_app.ledger.audit import APP_ACTOR, ROLLUP_RUN, record_event
from smart_app.ledger.directory import remember_patient
from smart_app.ledger.facts_merge import time_entries, with_app_records
from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.months import Month
from smart_app.ledger.queries import _to_entry
from smart_app.ledger.records import (
    AttestationRow,
    CarePlanVersionRow,
    ConsentRow,
    EvidenceRow,
    MonthStatusRow,
    PatientRow,
    ScaleRow,
)
from smart_app.ledger.values import Entry
from smart_app.rules.evaluate import evaluate
from smart_app.rules.facts import PatientFacts
from smart_app.rules.loader import rule_set_named
from smart_app.services import AppContext

SOURCES = ("ehr", "cache")
# Patients evaluated per read-evaluate-write round: few statements per batch, bounded memory, and short
# write transactions (SQLite has one writer). 200 was no faster and peaked ~20 MB higher at 100 entries a
# patient (bench/README.md).
BATCH = 100
# How often a process with nothing left to claim looks whether the other processes' batches are done.
WAIT_SECONDS = 0.5


@dataclass
class RollupReport:
    """What a rollup did, patient by patient."""

    month: str
    patients: int = 0
    new_versions: int = 0
    unchanged: int = 0
    billable: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    run_id: str = ""
    batches: int = 0


def _patients_query(organization_id: str, month: str) -> Subquery:
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


async def _fresh_facts(app: AppContext, org: Organization, client: FhirClient, caps: EhrCapabilities,
                       patient_id: str, month: str, scales: tuple[str, ...]) -> tuple[PatientFacts, PatientInfo]:
    record = await fetch_record(client, caps, patient_id, month, None, scales, org.timezone)
    facts = facts_from_record(record, month)
    summary = chart_summary(record)
    info = PatientInfo(summary.name, summary.birth_date, summary.mrn, coverage_reference(record),
                       medicare_id(record.patient, record.get("coverage")))
    await in_thread(_keep_read, app, org, patient_id, month, facts, info)
    return facts, info


def _keep_read(app: AppContext, org: Organization, patient_id: str, month: str, facts: PatientFacts,
               info: PatientInfo) -> None:
    """Save what was read, so a later rollup can run from it when the EHR is unavailable."""
    with transaction(app.sessions) as db:
        save_facts(db, org.id, patient_id, month, facts, info.coverage, mbi=info.mbi)
        existing = db.get(PatientRow, (org.id, patient_id))
        remember_patient(db, org.id, patient_id, name=info.name, birth_date=info.birth_date, mrn=info.mrn,
                         care_manager=existing.care_manager if existing else None,
                         care_manager_name=existing.care_manager_name if existing else None)


def _cached_many(db: Session, org: Organization, ids: Sequence[str],
                 month: str) -> dict[str, tuple[PatientFacts, PatientInfo] | SmartAppError]:
    """Saved facts and directory details of each patient, or the error that patient's rollup reports."""
    found = cached_facts_many(db, org.id, ids, month)
    people = {row.patient_id: row for row in db.scalars(select(PatientRow).where(
        PatientRow.organization_id == org.id, PatientRow.patient_id.in_(ids)))}
    out: dict[str, tuple[PatientFacts, PatientInfo] | SmartAppError] = {}
    for patient_id in ids:
        if patient_id not in found:
            out[patient_id] = EhrError(
                f"No facts from the EHR are saved for patient {patient_id} in {month}.",
                "Run the rollup with --source ehr (Backend Services), or open the patient's chart once.")
            continue
        facts, coverage, mbi = found[patient_id]
        person = people.get(patient_id)
        out[patient_id] = (facts, PatientInfo(person.name if person else "", person.birth_date if person else None,
                                              person.mrn if person else None, coverage, mbi))
    return out


def month_entries(db: Session, organization_id: str, ids: Sequence[str], month: str) -> dict[str, tuple[Entry, ...]]:
    """Each patient's counting entries of the month, as `ledger.queries.patient_month(...).entries` gives them."""
    Month.parse(month)
    te = TimeEntryRow.__table__
    # Every column an Entry carries (ends_at is not one of them).
    columns = [c for c in te.c if c.name != "ends_at"]
    in_batch = and_(te.c.organization_id == organization_id, te.c.month == month, te.c.patient_id.in_(ids))
    target = te.alias("target")
    # Driven from the correcting rows (few, found through the unique index on corrects_id), not from the
    # batch's rows: a join the other way round was planned as a scan of the whole ledger per batch.
    correctors: dict[str, object] = {row.corrects_id: row for row in db.execute(
        select(*columns).where(te.c.corrects_id.is_not(None), te.c.corrects_id.in_(
            select(target.c.id).where(target.c.organization_id == organization_id, target.c.month == month,
                                      target.c.patient_id.in_(ids)))))}
    history: dict[str, list[Entry]] = defaultdict(list)
    for row in db.execute(select(*columns).where(in_batch)
                          .order_by(te.c.patient_id, te.c.recorded_at, te.c.starts_at)):
        history[row.patient_id].append(_to_entry(row, correctors))  # type: ignore[arg-type]
    return {patient_id: tuple(sorted((e for e in rows if e.effective), key=lambda e: (e.start, e.recorded_at)))
            for patient_id, rows in history.items()}


def with_app_records_needed(db: Session, organization_id: str, ids: Sequence[str]) -> set[str]:
    """Patients of the batch with consents, attestations, rating scales, care plans or other evidence captured in the
    app."""
    found: set[str] = set()
    for table in (ConsentRow, AttestationRow, ScaleRow, EvidenceRow, CarePlanVersionRow):
        found.update(db.scalars(select(table.patient_id).where(
            table.organization_id == organization_id, table.patient_id.in_(ids)).distinct()))
    return found


def _newest_versions(db: Session, organization_id: str, ids: Sequence[str], month: str) -> dict[str, ClaimRow]:
    """The newest claim version of each patient-month that has one (content not loaded).

    One indexed read of the batch's versions, the newest picked here: a join on a per-patient MAX() was
    planned by PostgreSQL, on a freshly written claims table, as a scan per patient.
    """
    newest: dict[str, ClaimRow] = {}
    for row in db.scalars(select(ClaimRow).options(defer(ClaimRow.content)).where(
            ClaimRow.organization_id == organization_id, ClaimRow.month == month, ClaimRow.patient_id.in_(ids))):
        if row.patient_id not in newest or row.version > newest[row.patient_id].version:
            newest[row.patient_id] = row
    return newest


async def run_rollup(app: AppContext, org: Organization, month: str, *, source: str = "ehr",
                     progress: Callable[[int, int, str], None] | None = None, by: str = APP_ACTOR,
                     run_id: str | None = None, stop: Callable[[], bool] | None = None) -> RollupReport:
    """Evaluate every patient of the month and store changed claims; safe to re-run at any time.

    `by` is who asked for it (the biller, or the command line's account), for the audit log. Several
    processes may run this at once: they share one run's batches (`batches.py`), so each patient-month is
    evaluated by one of them; `run_id` joins a given run, and `stop` ends the work after the current batch.
    """
    if source not in SOURCES:
        raise SmartAppError(f"Unknown facts source {source!r}.", f"Use one of {', '.join(SOURCES)}.")
    rule_set = rule_set_named(org.rule_set)
    scales = rule_set.scale_loinc_codes()
    report = RollupReport(month=month)
    client = caps = None
    if source == "ehr":
        token = await backend_token(app.launch, org)
        client = FhirClient(app.http, org.issuer, token)
        caps, _ = await cached_capabilities(app.sessions, app.http, org.issuer)
        # The people the month's claims name, read once per run (name, credentials, NPI) and kept.
        wanted = await in_thread(_people_wanted, app, org, month)
        found = await read_people(client, wanted)
        await in_thread(_keep_people, app, org, found)
    total = await in_thread(_count, app, org.id, month)
    if run_id is None:
        run_id = await in_thread(batches.open_run, app.sessions, org.id, month, _patients_query(org.id, month), BATCH)
    report.run_id = run_id
    worker = batches.worker_name()
    # Each database step runs in the thread pool, so the biller's button never holds the event loop.
    while not (stop and stop()):
        claimed = await in_thread(batches.claim, app.sessions, report.run_id, worker)
        if claimed is None:
            # Nothing left to claim: wait for the batches other processes hold (or their leases to run out).
            if not await in_thread(batches.run_open, app.sessions, report.run_id):
                break
            await asyncio.sleep(WAIT_SECONDS)
            continue
        batch = await in_thread(_batch_ids, app, org.id, month, claimed)
        facts_of: dict[str, tuple[PatientFacts, PatientInfo] | SmartAppError] = {}
        if client is not None and caps is not None:
            # Read from the EHR (each read saved in its own transaction) before the batch's transaction.
            for patient_id in batch:
                try:
                    facts_of[patient_id] = await _fresh_facts(app, org, client, caps, patient_id, month, scales)
                except SmartAppError as exc:
                    facts_of[patient_id] = exc
        await in_thread(_decide_batch, app, org, month, batch, facts_of, report, total, progress, by, claimed, worker)
    await in_thread(_record_run, app, org, month, source, report, by)
    return report


def _batch_ids(app: AppContext, organization_id: str, month: str, claimed: batches.Claimed) -> list[str]:
    with transaction(app.sessions) as db:
        return batches.patients_in(db, _patients_query(organization_id, month), claimed)


def _people_wanted(app: AppContext, org: Organization, month: str) -> set[str]:
    with transaction(app.sessions) as db:
        return month_people(db, org, month)


def _keep_people(app: AppContext, org: Organization, people: dict[str, PractitionerDetails]) -> None:
    with transaction(app.sessions) as db:
        save_people(db, org.id, people, utcnow())


def _count(app: AppContext, org_id: str, month: str) -> int:
    with transaction(app.sessions) as db:
        return count_patients(db, org_id, month)


def _record_run(app: AppContext, org: Organization, month: str, source: str, report: RollupReport, by: str) -> None:
    with transaction(app.sessions) as db:
        record_event(db, actor=by, action=ROLLUP_RUN, subject=f"Claims/{month}", organization_id=org.id,
                     detail={"month": month, "source": source, "patients": report.patients,
                             "new_versions": report.new_versions, "unchanged": report.unchanged,
                             "billable": report.billable, "errors": [p for p, _ in report.errors],
                             "run": report.run_id, "batches": report.batches})


def _decide_batch(app: AppContext, org: Organization, month: str, batch: list[str],
                  facts_of: dict[str, tuple[PatientFacts, PatientInfo] | SmartAppError],
                  report: RollupReport, total: int, progress: Callable[[int, int, str], None] | None,
                  by: str, claimed: batches.Claimed, worker: str) -> None:
    """Decide a batch of patients in one transaction and store the claims that changed (counted in `report`).

    `facts_of` holds what was just read from the EHR; empty, the facts last read are taken from the cache. The
    batch is closed in the same transaction, so it is done exactly once even if its lease ran out meanwhile.
    """
    rule_set = rule_set_named(org.rule_set)
    with transaction(app.sessions) as db:
        if not batches.still_ours(db, claimed, worker):
            return  # the lease ran out and another process took the batch over: it decides these patients
        before = (report.patients, report.new_versions, report.unchanged, report.billable, len(report.errors))
        if not facts_of:
            facts_of = _cached_many(db, org, batch, month)
        entries_of = month_entries(db, org.id, batch, month)
        own_records = with_app_records_needed(db, org.id, batch)
        newest = _newest_versions(db, org.id, batch, month)
        people = known_people(db, org.id)
        now = utcnow()
        today = now.astimezone(ZoneInfo(org.timezone)).date()
        changed: list[ClaimRow] = []
        for patient_id in batch:
            report.patients += 1
            found = facts_of[patient_id]
            try:
                if isinstance(found, SmartAppError):
                    raise found
                ehr_facts, info = found
                facts = (with_app_records(db, org.id, patient_id, org.timezone, ehr_facts)
                         if patient_id in own_records else ehr_facts)
                entries = entries_of.get(patient_id, ())
                decision = evaluate(facts, time_entries(entries, org.timezone), rule_set, month=month)
                claim = propose_claim(decision, facts, entries, org, patient_id, info, today=today, people=people)
                outcome, _ = store_version(db, claim, newest.get(patient_id), now, changed)
                report.new_versions += outcome == "new"
                report.unchanged += outcome == "unchanged"
                report.billable += claim.billable
            except SmartAppError as exc:
                # One patient's EHR trouble must not lose the rest of the month; it is reported.
                report.errors.append((patient_id, str(exc)))
            if progress is not None:
                progress(report.patients, total, patient_id)
        # One audit event per batch covers the versions written and those they superseded.
        record_versions(db, changed, by=by, organization_id=org.id, month=month)
        after = (report.patients, report.new_versions, report.unchanged, report.billable, len(report.errors))
        batches.close(db, claimed, *(a - b for a, b in zip(after, before, strict=True)))
        report.batches += 1
