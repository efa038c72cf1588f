"""The month's FHIR export as a biller takes it from the command line, checked by Medplum's validator.

A month as the demo makes one, over real HTTP: a nurse records time from two charts, the biller rolls up and
approves, the write-back reaches the sandbox EHR; then late time brings a corrected claim whose approval
retires what the first version wrote. `smart-app export` then writes the month as a collection Bundle (and the
earlier versions as a history Bundle, and NDJSON); Medplum's validator (structure and FHIRPath invariants such
as bdl-1 and bdl-7) and fhir.resources must both find them valid. Before issue 15 the export carried a `total`
and listed the three retired resources twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from smart_app.ehr.fhir_models import check_structure
from tests.billing.test_writeback_e2e import MONTH, approve_once, late_review, month_with_one_call
from tests.databases import BACKENDS, fresh_database
from tests.interop.conftest import Medplum
from tests.stack import Stack, running_stack
from tests.test_capture_api import api, earlier_today, launch

SECOND_PATIENT = "complex-ccm-high"


@pytest.fixture(scope="module", params=BACKENDS)
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             pg_template) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """A corrected month exported by the command line: (the folder with bundle.json, history.json and
    month.ndjson, the bundle export's run)."""
    tmp = tmp_path_factory.mktemp(f"export-{request.param}")
    with fresh_database(request.param, tmp, pg_template) as url, running_stack(url, tmp) as stack:
        demo_month(stack)
        env = {**os.environ, "SMART_APP_DATABASE_URL": url, "SMART_APP_DATA_DIR": str(tmp),
               "SMART_APP_SECRET_KEY": "k" * 40}
        base = ["--org", "sandbox", "--month", MONTH]
        bundle = cli(env, "export", *base, "--out", str(tmp / "bundle.json"), "--history", str(tmp / "history.json"))
        ndjson = cli(env, "export", *base, "--format", "ndjson", "--out", str(tmp / "month.ndjson"))
        assert ndjson.returncode == 0, ndjson.stderr
        yield tmp, bundle


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smart_app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def demo_month(stack: Stack) -> None:
    """Two patients' time, approved and written back; late time then corrects the first patient's claim."""
    nurse, biller, _ = month_with_one_call(stack)
    other, _ = launch(stack, SECOND_PATIENT, user="pr-nurse")
    day, time = earlier_today(700)
    made = api(stack, "POST", "/entries", other, json={
        "program": "ccm", "activity": "care-plan-update", "date": day, "time": time, "minutes": 25})
    assert made.status_code == 201, made.text
    rolled = api(stack, "POST", "/billing/rollup", biller, json={"month": MONTH})
    assert rolled.status_code == 200 and rolled.json()["errors"] == [], rolled.text
    approve_all(stack, biller)
    late_review(stack, nurse, biller)
    approve_all(stack, biller)
    sent = api(stack, "POST", "/billing/deliver", biller)
    assert sent.status_code == 200, sent.text


def approve_all(stack: Stack, biller: dict) -> None:
    for _ in range(3):  # one claim per approval; each patient's in turn
        approve_once(stack, biller)


def test_the_months_export_passes_medplums_validator(medplum: Medplum, exported) -> None:
    folder, run = exported
    assert run.returncode == 0, run.stderr
    bundle = json.loads((folder / "bundle.json").read_text())
    assert medplum.validate(bundle) == []
    check_structure(bundle)
    assert bundle["type"] == "collection" and "total" not in bundle
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    patients = {e["resource"].get("subject", e["resource"].get("patient", e["resource"].get("for", {})))
                .get("reference") for e in bundle["entry"]}
    assert {"Patient/ccm-two-chronic", f"Patient/{SECOND_PATIENT}"} <= patients
    # The correction retired version 1 of the first patient's claim, minutes and superbill: each is there once,
    # as it now stands.
    retired = sorted((e["resource"]["resourceType"], e["resource"]["status"]) for e in bundle["entry"]
                     if e["resource"].get("status") in ("entered-in-error", "superseded"))
    assert retired == [("Claim", "entered-in-error"), ("DocumentReference", "superseded"),
                       ("Observation", "entered-in-error")]


def test_the_earlier_versions_pass_as_a_history_bundle(medplum: Medplum, exported) -> None:
    folder, run = exported
    history = json.loads((folder / "history.json").read_text())
    assert medplum.validate(history) == []
    check_structure(history)
    assert history["type"] == "history" and history["total"] == len(history["entry"]) == 6
    assert f"as a history Bundle to {folder / 'history.json'}" in run.stderr
    bundle = json.loads((folder / "bundle.json").read_text())
    assert {e["fullUrl"] for e in history["entry"]} < {e["fullUrl"] for e in bundle["entry"]}


def test_ndjson_holds_the_same_resources_one_a_line(exported) -> None:
    folder, _ = exported
    lines = (folder / "month.ndjson").read_text().splitlines()
    bundle = json.loads((folder / "bundle.json").read_text())
    assert [json.loads(line) for line in lines] == [e["resource"] for e in bundle["entry"]]
