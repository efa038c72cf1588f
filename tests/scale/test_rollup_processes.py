"""Month end across processes: two `smart-app rollup` of one month at once, and `rollup --workers 2`, on one
PostgreSQL database. The data is written in bulk (bench/data.py); facts come from the saved read (`--source
cache`), so no EHR is involved: what is tested is the coordination through the database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.data import organization, seed_entries, seed_organization, seed_patients
from smart_app.billing.models import ClaimRow, RollupBatchRow
from smart_app.statuses import RollupBatchStatus
from tests.databases import PostgresTemplate, engine_for, fresh_database, one_transaction
from tests.stack import TEST_SECRET

MONTH = "2026-10"
PATIENTS = 500
ENTRIES = 2000


def cli_env(url: str, data_dir: Path) -> dict[str, str]:
    """The environment a `smart-app` process on the test's database runs with."""
    return {**os.environ, "SMART_APP_DATABASE_URL": url, "SMART_APP_SECRET_KEY": TEST_SECRET,
            "SMART_APP_DATA_DIR": str(data_dir), "SMART_APP_BASE_URL": "http://127.0.0.1:9"}


def start_rollup(url: str, data_dir: Path, org_id: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "smart_app.cli", "rollup", "--org", org_id, "--month", MONTH,
                             "--source", "cache", *extra], env=cli_env(url, data_dir), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, pg_template: PostgresTemplate) -> Iterator[tuple[str, Path]]:
    """A PostgreSQL database with two organizations of PATIENTS patients each, their facts saved."""
    tmp = tmp_path_factory.mktemp("rollup-processes")
    with fresh_database("postgresql", tmp, pg_template) as url:
        with engine_for(url) as engine:
            for n, org_id in enumerate(("org-a", "org-b")):
                seed_organization(engine, organization(org_id))
                seed_patients(engine, PATIENTS, MONTH, org_id=org_id)
                seed_entries(engine, PATIENTS, ENTRIES, MONTH, org_id=org_id, offset=n * ENTRIES)
        yield url, tmp


def claim_versions(url: str, org_id: str) -> dict[str, list[int]]:
    with one_transaction(url) as db:
        found: dict[str, list[int]] = {}
        for patient_id, version in db.execute(select(ClaimRow.patient_id, ClaimRow.version).where(
                ClaimRow.organization_id == org_id, ClaimRow.month == MONTH).order_by(ClaimRow.version)):
            found.setdefault(patient_id, []).append(version)
        return found


def batch_holders(url: str, org_id: str) -> tuple[int, set[str]]:
    """How many batches are not done, and the processes (host:pid) that closed the done ones."""
    with one_transaction(url) as db:
        open_count = db.scalar(select(func.count()).select_from(RollupBatchRow).where(
            RollupBatchRow.organization_id == org_id, RollupBatchRow.status != RollupBatchStatus.DONE))
        holders = set(db.scalars(select(RollupBatchRow.claimed_by).where(RollupBatchRow.organization_id == org_id)))
        return int(open_count or 0), {h.rsplit(":", 1)[0] for h in holders if h}


def test_two_rollups_of_one_month_at_once_share_it(database: tuple[str, Path]) -> None:
    url, tmp = database
    first, second = start_rollup(url, tmp, "org-a"), start_rollup(url, tmp, "org-a")
    outputs = [p.communicate(timeout=120) for p in (first, second)]
    for process, (out, err) in zip((first, second), outputs, strict=True):
        assert process.returncode == 0, err
        assert "UniqueViolation" not in err and "Traceback" not in err
        assert f"Rollup of {MONTH}" in out and f"{PATIENTS} patients" in out, out
    versions = claim_versions(url, "org-a")
    assert len(versions) == PATIENTS
    assert all(v == [1] for v in versions.values()), "no patient-month was proposed twice"
    open_count, holders = batch_holders(url, "org-a")
    assert open_count == 0 and len(holders) == 2, "both processes took batches of the one run"


def test_rollup_with_two_workers_splits_the_month(database: tuple[str, Path]) -> None:
    url, tmp = database
    process = start_rollup(url, tmp, "org-b", "--workers", "2")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert f"{PATIENTS} patients" in out and f"{PATIENTS} new claim versions" in out, out
    versions = claim_versions(url, "org-b")
    assert len(versions) == PATIENTS and all(v == [1] for v in versions.values())
    open_count, holders = batch_holders(url, "org-b")
    assert open_count == 0 and len(holders) == 2, "the parent and its helper both evaluated batches"


def test_sqlite_refuses_more_than_one_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    process = start_rollup(url, tmp_path, "org-a", "--workers", "2")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "SQLite runs the rollup in one process" in err and "PostgreSQL" in err
