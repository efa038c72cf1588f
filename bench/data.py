"""Synthetic data for the benchmarks, written in bulk (SQLAlchemy Core executemany in chunks), never through
the per-entry service path: an organization, its patient directory, facts-cache rows, month snapshots and a
large ledger of time entries."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Table, insert

from smart_app.billing.models import FactsCacheRow
from smart_app.db import session_factory, transaction
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.records import MonthStatusRow, PatientRow
from smart_app.rules.facts import ICD10CM, CarePlan, Condition, Consent, PatientFacts
from smart_app.rules.facts_json import facts_to_json

ORG_ID = "bench-org"
TZ = "America/New_York"
MONTH = "2026-10"  # a closed month: what a month-end rollup runs over
CHUNK = 5000
# Two chronic conditions per patient, drawn from common chronic ICD-10-CM pairs.
CHRONIC = (("E11.9", "Type 2 diabetes mellitus without complications"), ("I10", "Essential (primary) hypertension"),
           ("E78.5", "Hyperlipidemia, unspecified"), ("J44.9", "Chronic obstructive pulmonary disease, unspecified"),
           ("N18.30", "Chronic kidney disease, stage 3 unspecified"), ("I50.9", "Heart failure, unspecified"))
# Who logs time, with weights: mostly clinical staff, some care managers and the billing practitioner.
ROLES = (("clinical-staff", 0.7), ("care-manager", 0.2), ("billing-practitioner", 0.1))
ACTIVITIES = ("patient-call", "medication-reconciliation", "care-plan-update", "provider-communication",
              "record-review")


def organization(org_id: str = ORG_ID) -> Organization:
    return Organization(id=org_id, name="Bench Family Practice", issuer="http://127.0.0.1:9/fhir",
                        client_id="bench", timezone=TZ, billing_practitioner="Practitioner/pr-billing-md",
                        supervising_practitioner="Practitioner/pr-billing-md", rule_set="medicare-2026",
                        fhir_organization="Organization/org-practice")


def patient_id(n: int) -> str:
    return f"bench-pt-{n:06d}"


def patient_facts(n: int, month: str) -> PatientFacts:
    """Realistic CCM facts: two chronic conditions, an active CCM consent, a care plan, an initiating visit."""
    first, second = CHRONIC[n % len(CHRONIC)], CHRONIC[(n // len(CHRONIC) + n + 1) % len(CHRONIC)]
    if first == second:
        second = CHRONIC[(n + 1) % len(CHRONIC)]
    year, mon = (int(x) for x in month.split("-"))
    start = dt.date(year, mon, 1)
    return PatientFacts(
        month=month,
        conditions=(Condition(first[0], ICD10CM, "active", dt.date(2019, 3, 1), f"cond-{n}-1", "confirmed", first[1]),
                    Condition(second[0], ICD10CM, "active", dt.date(2021, 6, 1), f"cond-{n}-2", "confirmed",
                              second[1])),
        consents=(Consent("ccm", "active", start - dt.timedelta(days=90 + n % 60), f"consent-{n}"),),
        care_plans=(CarePlan("active", start - dt.timedelta(days=80 + n % 30), f"careplan-{n}"),),
        initiating_visit=start - dt.timedelta(days=100 + n % 120),
    )


def _chunks(rows: Iterator[dict], size: int = CHUNK) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _bulk(engine: Engine, table: object, rows: Iterator[dict]) -> int:
    """executemany of Core inserts, one transaction per chunk; how many rows."""
    count = 0
    statement = insert(table)  # type: ignore[arg-type]
    for chunk in _chunks(rows):
        with engine.begin() as connection:
            connection.execute(statement, chunk)
        count += len(chunk)
    return count


def seed_organization(engine: Engine, org: Organization | None = None) -> Organization:
    org = org or organization()
    with transaction(session_factory(engine)) as db:
        save_organizations(db, [org])
    return org


def seed_patients(engine: Engine, patients: int, month: str = MONTH, *, org_id: str = ORG_ID, facts: bool = True,
                  snapshots: bool = False, managers: int = 25) -> None:
    """Directory rows (and facts-cache rows, and month_status snapshots) for `patients` patients."""
    now = dt.datetime.now(dt.UTC)
    _bulk(engine, PatientRow.__table__, (
        {"organization_id": org_id, "patient_id": patient_id(n), "name": f"Patient {n:06d}, Bench",
         "birth_date": f"19{40 + n % 40}-0{1 + n % 9}-1{n % 9}", "mrn": f"MRN-{n:07d}",
         "care_manager": f"Practitioner/cm-{n % managers}", "care_manager_name": f"Care Manager {n % managers}",
         "updated_at": now} for n in range(patients)))
    if facts:
        _bulk(engine, FactsCacheRow.__table__, (
            {"organization_id": org_id, "patient_id": patient_id(n), "month": month,
             "facts": {"facts": facts_to_json(patient_facts(n, month)), "coverage": f"Coverage/cov-{n}"},
             "fetched_at": now} for n in range(patients)))
    if snapshots:
        eligible = (["ccm"], ["ccm", "complex_ccm"], ["ccm", "bhi"], ["pcm"], [])
        _bulk(engine, MonthStatusRow.__table__, (
            {"organization_id": org_id, "patient_id": patient_id(n), "month": month,
             "eligible_programs": eligible[n % len(eligible)], "decision": {}, "evaluated_at": now}
            for n in range(patients)))


def entry_rows(patients: int, entries: int, month: str, *, org_id: str = ORG_ID, seed: int = 7,
               offset: int = 0) -> Iterator[dict]:
    """`entries` time entries spread evenly over `patients` patients, inside `month` on the org's clock.

    Entries are short (1 to 4 minutes) so each patient's minutes stay in a realistic range whatever the
    count per patient; about one in ten is BHI time, the rest CCM. `offset` shifts the clock so a second
    call adds entries that do not overlap the first call's.
    """
    rng = random.Random(seed)
    zone = ZoneInfo(TZ)
    year, mon = (int(x) for x in month.split("-"))
    first = dt.datetime(year, mon, 1, 8, 0, tzinfo=zone)
    recorded = dt.datetime(year, mon, 28, 12, 0, tzinfo=dt.UTC)
    roles = [r for r, _ in ROLES]
    weights = [w for _, w in ROLES]
    for i in range(entries):
        n = i % patients
        k = i // patients + offset
        role = rng.choices(roles, weights)[0]
        performer = f"Practitioner/{role}-{n % 40}"
        # One slot of 5 minutes per (patient, k): distinct starts, so no person overlaps themself.
        day, slot = divmod(k, 96)
        start = (first + dt.timedelta(days=day % 27, minutes=5 * slot + (n % 3))).astimezone(dt.UTC)
        minutes = rng.randint(1, 4)
        # Ids ascend with the insertion order (as time-ordered UUIDs do), so the primary key index grows at its end.
        entry_id = str(uuid.UUID(int=((seed << 40 | offset + i) << 64) | rng.getrandbits(64)))
        yield {"id": entry_id, "organization_id": org_id, "patient_id": patient_id(n), "performer": performer,
               "role": role,
               "program": "bhi" if rng.random() < 0.1 else "ccm", "activity": ACTIVITIES[i % len(ACTIVITIES)],
               "starts_at": start, "ends_at": start + dt.timedelta(minutes=minutes), "minutes": minutes,
               "month": month, "note": "", "source": "manual", "shared": False, "kind": "entry",
               "corrects_id": None, "reason": "", "recorded_by": performer, "recorded_at": recorded, "late": False,
               "split_group": None, "timer_id": None}


def _sqlite_value(value: object) -> object:
    # What SQLAlchemy's UTCDateTime stores on SQLite: naive UTC text with microseconds.
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, bool):
        return int(value)
    return value


def _fast_bulk(engine: Engine, table: Table, rows: Iterator[dict]) -> int:
    """Bulk insert for the large ledger: PostgreSQL COPY, or SQLite executemany of driver-ready tuples."""
    columns = [c.name for c in table.columns]
    count = 0
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                for chunk in _chunks(rows, 50000):
                    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in chunk:
                            copy.write_row([row[c] for c in columns])
                    count += len(chunk)
            raw.commit()
        finally:
            raw.close()
        return count
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    for chunk in _chunks(rows, 50000):
        with engine.begin() as connection:
            connection.exec_driver_sql(sql, [tuple(_sqlite_value(row[c]) for c in columns) for row in chunk])
        count += len(chunk)
    return count


def seed_entries(engine: Engine, patients: int, entries: int, month: str = MONTH, *, org_id: str = ORG_ID,
                 seed: int = 7, offset: int = 0) -> int:
    """Bulk-insert synthetic time entries; how many.

    The ledger's secondary indexes are dropped for the load and built again after it (a sort instead of a
    million random index inserts); on PostgreSQL the table is then analyzed, as autovacuum would soon do.
    """
    table: Table = TimeEntryRow.__table__  # type: ignore[assignment]
    with engine.begin() as connection:
        for index in table.indexes:
            index.drop(connection, checkfirst=True)
    try:
        count = _fast_bulk(engine, table, entry_rows(patients, entries, month, org_id=org_id, seed=seed,
                                                     offset=offset))
    finally:
        with engine.begin() as connection:
            for index in table.indexes:
                index.create(connection, checkfirst=True)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f"ANALYZE {table.name}")
    return count


def double_entries(engine: Engine, month: str = MONTH, *, org_id: str = ORG_ID) -> int:
    """Copy every entry of the organization-month once more, inside the database (INSERT ... SELECT): the same
    patients, people, programs and times under new ids (the last character of the id becomes `x`, which no
    generated id carries). Doubles each patient's minutes; how many rows were added."""
    table: Table = TimeEntryRow.__table__  # type: ignore[assignment]
    columns = [c.name for c in table.columns]
    chosen = ["substr(id, 1, 35) || 'x'" if c == "id" else c for c in columns]
    with engine.begin() as connection:
        for index in table.indexes:
            index.drop(connection, checkfirst=True)
        added = connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(chosen)} FROM {table.name} "
            f"WHERE organization_id = '{org_id}' AND month = '{month}'").rowcount
        for index in table.indexes:
            index.create(connection, checkfirst=True)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f"ANALYZE {table.name}")
    return added
