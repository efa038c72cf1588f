"""One decision per patient-month: the patient page, the rollup, the biller page, the superbill and the panel show
the codes, units, counted minutes and estimates the rules' evaluator decides, for every fixture patient (real HTTP to
the sandbox EHR, SQLite and PostgreSQL) and for generated facts (the panel, the rollup and the superbill)."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import html
import io
import json
import random
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from smart_app.billing.claims import month_claims
from smart_app.billing.facts_source import save_facts
from smart_app.billing.panel import panel_rows, snapshot_json
from smart_app.billing.pricing import organization_pricing
from smart_app.billing.rollup import run_rollup
from smart_app.billing.superbill import estimated_total, superbill_csv
from smart_app.db import transaction
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.directory import remember_patient, save_month_status
from smart_app.ledger.entries import record_entry
from smart_app.ledger.facts_merge import time_entries, with_app_records
from smart_app.ledger.queries import month_fingerprint, patient_month
from smart_app.ledger.values import EntryInput
from smart_app.paths import data_path
from smart_app.rules.evaluate import evaluate
from smart_app.rules.facts import CarePlan, Condition, Consent, Episode, PatientFacts, RatingScale
from smart_app.rules.loader import rule_set_named
from smart_app.services import build_context
from smart_app.settings import Settings
from tests.stack import Stack, bearer, biller_headers, new_browser, open_chart
from tests.test_capture_api import api
from tests.test_consent_capture import ALL_ELEMENTS

TZ = ZoneInfo("America/New_York")
PATIENTS = sorted(p.stem for p in Path(data_path("fixtures")).glob("*.json") if p.stem != "organization")
DOROTHY = "ccm-no-consent"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"

# What one view says of a patient-month: {(code, units)}, minutes counted behind them, estimate (None: not shown).
View = tuple[frozenset[tuple[str, int]], int, Decimal | None]


def _programs(page: str) -> list[str]:
    select = re.search(r'<select name="program" data-program-select>(.*?)</select>', page, re.S)
    return re.findall(r'<option value="([a-z_]+)"', select.group(1)) if select else []


def _page_view(page: str) -> View:
    """The patient page: each program card's billed codes and the minutes counted toward them."""
    codes: set[tuple[str, int]] = set()
    counted = 0
    for billed in re.findall(r'<p class="billed">(.*?)</p>', page, re.S):
        for code, units in re.findall(r"<strong>([A-Z0-9]+)</strong>(?: &times; (\d+))?", billed):
            codes.add((code, int(units or 1)))
        found = re.search(r"\((\d+)(?: of \d+)? minutes logged count toward these codes\)", billed)
        counted += int(found.group(1)) if found else 0
    return frozenset(codes), counted, None


def _money(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", "").strip() or "0")


def _biller_views(page: str) -> dict[str, View]:
    """The biller page: each claim's lines (code, units, minutes by role, estimate)."""
    out: dict[str, View] = {}
    for article in re.findall(r'<article class="claim[^"]*"(.*?)</article>', page, re.S):
        patient = re.search(r'data-patient="([^"]+)"', article)
        assert patient, article[:300]
        codes: set[tuple[str, int]] = set()
        counted, total = 0, Decimal("0.00")
        for code, units, roles, estimate in re.findall(
                r'<tr><td><strong>([A-Z0-9]+)</strong>.*?</td>\s*<td class="num">(\d+)</td><td>[^<]*</td>\s*'
                r'<td>([^<]*)</td>\s*<td class="num">([^<]*)</td></tr>', article, re.S):
            codes.add((code, int(units)))
            counted += sum(int(m) for m in re.findall(r"(\d+)", roles))
            total += _money(estimate)
        out[html.unescape(patient.group(1))] = (frozenset(codes), counted, total)
    return out


def _superbill_views(text: str) -> dict[str, View]:
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in csv.DictReader(io.StringIO(text, newline="")):
        if row["row"] == "code":  # the itemized time log's rows follow each patient's code rows
            rows[row["patient_id"]].append(row)
    return {patient: (frozenset((r["code"], int(r["units"])) for r in lines), sum(int(r["minutes"]) for r in lines),
                      sum((_money(r["estimated_amount"]) for r in lines), Decimal("0.00")))
            for patient, lines in rows.items()}


def _panel_views(text: str) -> dict[str, View]:
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    for cells in reader:
        row = dict(zip(header, cells, strict=True))
        rows[row["Patient ID"]].append(row)
    captured = next(h for h in header if h.startswith("Captured"))
    out: dict[str, View] = {}
    for patient, lines in rows.items():
        codes = {(code, int(units)) for r in lines for code, units in
                 re.findall(r"([A-Z0-9]+) x(\d+)", r["Codes met"])}
        counted = sum(int(r["Counted minutes"]) for r in lines if r["Codes met"])
        out[patient] = (frozenset(codes), counted, sum((_money(r[captured]) for r in lines), Decimal("0.00")))
    return out


def _slots(month_start: dt.datetime):  # noqa: ANN202
    """Start times that never overlap for one person: each entry after the last one ended."""
    clock = month_start.replace(hour=7)
    while True:
        minutes = yield clock
        clock += dt.timedelta(minutes=minutes + 5)


def test_every_view_shows_the_evaluators_decision_for_every_fixture_patient(stack: Stack) -> None:
    now = dt.datetime.now(TZ)
    month = f"{now:%Y-%m}"
    if now.day < 4:
        pytest.skip("needs three days of the month behind today to date entries before a consent taken today")
    rng = random.Random(13)
    slots = _slots(now.replace(day=1, minute=0, second=0, microsecond=0))
    next(slots)
    start = slots.send(0)
    logged: dict[str, int] = defaultdict(int)
    sessions: dict[str, dict[str, str]] = {}
    for i, patient in enumerate(PATIENTS):
        # Each chart from its own loopback address: a dozen launches in a minute stay within the per-address limit.
        with httpx.Client(follow_redirects=True, timeout=20,
                          transport=httpx.HTTPTransport(local_address=f"127.0.0.{40 + i}")) as browser:
            opened = open_chart(browser, stack, patient, user="pr-care-manager")
        assert opened.status_code == 200, opened.text
        headers = sessions[patient] = bearer(opened.text)
        with new_browser() as browser:
            page = browser.get(f"{stack.app_url}/patient", headers=headers).text
        for program in ["ccm"] if patient == DOROTHY else _programs(page):
            minutes = 25 if patient == DOROTHY else rng.choice([8, 17, 25, 38, 47, 64])
            assert start + dt.timedelta(minutes=minutes) < now
            made = api(stack, "POST", "/entries", headers, json={
                "program": program, "activity": "record-review", "date": f"{start:%Y-%m-%d}",
                "time": f"{start:%H:%M}", "minutes": minutes})
            assert made.status_code == 201, made.text
            logged[patient] += minutes
            start = slots.send(minutes)
        if patient == DOROTHY:
            # Consent taken in the app today, after the minutes: none of them count (the evaluator's rule).
            consent = api(stack, "POST", "/consents", headers, json={
                "program": "ccm", "method": "verbal", "obtained_on": now.date().isoformat(), **ALL_ELEMENTS})
            assert consent.status_code == 201, consent.text
    assert logged[DOROTHY] == 25

    # 1. The patient page, opened again after the last entry.
    page_views: dict[str, View] = {}
    for patient in PATIENTS:
        with new_browser() as browser:
            page_views[patient] = _page_view(browser.get(f"{stack.app_url}/patient",
                                                         headers=sessions[patient]).text)

    biller = biller_headers(stack)
    with new_browser() as browser:
        # 5. The panel, before the rollup: the page views' kept decisions.
        panel_before = _panel_views(browser.get(f"{stack.app_url}/panel.csv", params={"month": month},
                                                headers=biller).text)
        run = browser.post(f"{stack.app_url}/api/v1/billing/rollup", headers=biller,
                           json={"month": month, "source": "ehr"}, timeout=120)
        assert run.status_code == 200 and not run.json()["errors"], run.text
        biller_page = browser.get(f"{stack.app_url}/billing", params={"month": month}, headers=biller).text
        superbill = browser.get(f"{stack.app_url}/billing/superbill.csv", params={"month": month, "draft": "1"},
                                headers=biller)
        assert superbill.status_code == 200, superbill.text
        panel_after = _panel_views(browser.get(f"{stack.app_url}/panel.csv", params={"month": month},
                                               headers=biller).text)

    # 2. The rollup's stored claims, priced as the superbill prices them.
    app = build_context(stack.settings)
    try:
        with transaction(app.sessions) as db:
            stored = {c.patient_id: c for c in month_claims(db, stack.organization.id, month)}
    finally:
        app.engine.dispose()
    pricing = organization_pricing(stack.organization)
    rollup_views: dict[str, View] = {
        patient: (frozenset((line.code, line.units) for line in c.claim.lines),
                  sum(line.minutes for line in c.claim.lines), estimated_total(c.claim, pricing))
        for patient, c in stored.items()}
    billers, superbills = _biller_views(biller_page), _superbill_views(superbill.text)

    nothing: View = (frozenset(), 0, Decimal("0.00"))
    billable = 0
    for patient in PATIENTS:
        truth = rollup_views.get(patient, nothing)
        billable += bool(truth[0])
        seen = {
            "patient page": page_views[patient],
            "biller page": billers.get(patient, nothing),
            "superbill": superbills.get(patient, nothing),
            "panel before the rollup": panel_before.get(patient, nothing),
            "panel after the rollup": panel_after.get(patient, nothing),
        }
        for where, view in seen.items():
            codes, counted, amount = view
            assert (codes, counted) == truth[:2], (patient, where, view, truth)
            if amount is not None:
                assert amount == truth[2], (patient, where, view, truth)
    assert billable >= 5, rollup_views
    # Dorothy agrees everywhere: her 25 minutes, logged before her consent, count nowhere.
    assert rollup_views.get(DOROTHY, nothing)[0] == frozenset()
    dorothy_panel = browser_panel_row(stack, month, DOROTHY, biller)
    assert (dorothy_panel["Minutes"], dorothy_panel["Counted minutes"], dorothy_panel["Codes met"]) == ("25", "0", "")


def browser_panel_row(stack: Stack, month: str, patient: str, headers: dict[str, str]) -> dict[str, str]:
    """The panel CSV's CCM row of one patient."""
    text = httpx.get(f"{stack.app_url}/panel.csv", params={"month": month}, headers=headers).text
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    rows = [dict(zip(header, cells, strict=True)) for cells in reader]
    return next(r for r in rows if r["Patient ID"] == patient and r["Program"] == "ccm")


def test_fixture_list_is_the_sandboxes() -> None:
    # Every fixture patient is a Bundle with a Patient: the test above walks them all.
    for patient in PATIENTS:
        bundle = json.loads(Path(data_path("fixtures"), f"{patient}.json").read_text())
        assert any(e["resource"]["resourceType"] == "Patient" for e in bundle["entry"]), patient


# -- generated facts: the panel (kept decisions and decisions made afresh), the rollup and the superbill ----------

GEN_MONTH = "2026-11"
GEN_TODAY = dt.date(2026, 11, 20)
CHRONIC = ("E11.9", "I10", "J44.9", "N18.3", "F32.A", "F41.1", "E78.5")
ROLES = ("clinical-staff", "care-manager", "billing-practitioner", "psychiatric-consultant")


def _generated(rng: random.Random, patient: str) -> tuple[PatientFacts, list[tuple[str, str, int, int]]]:
    """Facts with a random share of what the programs need, and entries (program, role, minutes, day)."""
    codes = rng.sample(CHRONIC, rng.randint(0, 4))
    consents = tuple(Consent(p, "active", dt.date(2026, rng.choice([6, 11]), rng.randint(1, 28)), id=f"{patient}-{p}")
                     for p in rng.sample(("ccm", "pcm", "bhi", "cocm", "apcm"), rng.randint(0, 3)))
    facts = PatientFacts(
        month=GEN_MONTH,
        conditions=tuple(Condition(c, ICD10, "active", id=f"{patient}-{c}", high_risk=rng.random() < 0.3)
                         for c in codes),
        consents=consents,
        rating_scales=(RatingScale("PHQ-9", dt.date(2026, 11, 3), 12, id=f"{patient}-phq"),)
        if rng.random() < 0.5 else (),
        care_plans=(CarePlan("active", dt.date(2026, 1, 5), id=f"{patient}-plan"),) if rng.random() < 0.7 else (),
        initiating_visit=dt.date(2026, 5, 1) if rng.random() < 0.85 else None,
        complexity=rng.choice([None, "low", "moderate", "high"]),
        episodes=(Episode("cocm", dt.date(2026, rng.choice([9, 11]), 1)),) if rng.random() < 0.6 else (),
        qmb=rng.choice([None, True, False]))
    entries = [(rng.choice(("ccm", "ccm", "pcm", "bhi", "cocm", "apcm")), rng.choice(ROLES),
                rng.choice((5, 10, 15, 20, 25, 31, 40)), rng.randint(1, 19)) for _ in range(rng.randint(1, 6))]
    return facts, entries


def test_generated_facts_give_one_decision_in_the_panel_rollup_and_superbill(database_url, engine, tmp_path) -> None:
    org = Organization(id="org-gen", name="Generated Clinic", issuer="https://gen.example.org/fhir",
                       client_id="app", timezone="America/New_York")
    settings = Settings(data_dir=tmp_path, database_url=database_url, base_url="http://127.0.0.1:8000",
                        secret_key="one-decision-secret")
    app = build_context(settings, engine)
    rules = rule_set_named(org.rule_set)
    rng = random.Random(2026)
    patients = [f"gen-{i:02d}" for i in range(40)]
    with transaction(app.sessions) as db:
        save_organizations(db, [org])
    performer = 0
    for i, patient in enumerate(patients):
        facts, entries = _generated(rng, patient)
        with transaction(app.sessions) as db:
            save_facts(db, org.id, patient, GEN_MONTH, facts, None)
            remember_patient(db, org.id, patient, name=f"Generated {patient}", birth_date=None, mrn=patient,
                             care_manager=None, care_manager_name=None)
        for program, role, minutes, day in entries:
            performer += 1
            with transaction(app.sessions) as db:
                record_entry(db, EntryInput(
                    organization_id=org.id, patient_id=patient, performer=f"Practitioner/g{performer}", role=role,
                    program=program, activity="record-review", minutes=minutes,
                    start=dt.datetime(2026, 11, day, 15, 0, tzinfo=dt.UTC)), timezone=org.timezone,
                    now=dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC))
        if i % 2:
            # Half as the in-chart page leaves them: its Decision kept with the ledger state it saw.
            with transaction(app.sessions) as db:
                ledger = patient_month(db, org.id, patient, GEN_MONTH)
                decision = evaluate(with_app_records(db, org.id, patient, org.timezone, facts),
                                    time_entries(ledger.entries, org.timezone), rules, month=GEN_MONTH)
                save_month_status(db, org.id, patient, GEN_MONTH, eligible_programs=["ccm"],
                                  decision=decision.to_json(),
                                  panel=snapshot_json(decision, rules, month_fingerprint(ledger)))
    pricing = organization_pricing(org)
    try:
        with transaction(app.sessions) as db:
            panel = panel_rows(db, org.id, GEN_MONTH, rules, today=GEN_TODAY, timezone=org.timezone, pricing=pricing)
        report = asyncio.run(run_rollup(app, org, GEN_MONTH, source="cache"))
        assert not report.errors, report.errors
        with transaction(app.sessions) as db:
            claims = {c.patient_id: c for c in month_claims(db, org.id, GEN_MONTH)}
        billable = [c.claim for c in claims.values() if c.claim.billable]
        superbills = _superbill_views(superbill_csv(billable, pricing=pricing)) if billable else {}
    finally:
        asyncio.run(app.http.aclose())
    panel_views: dict[str, View] = {}
    for row in panel.rows:
        codes, counted, amount = panel_views.get(row.patient_id, (frozenset(), 0, Decimal("0.00")))
        panel_views[row.patient_id] = (codes | frozenset(row.codes_met),
                                       counted + (row.counted_minutes if row.codes_met else 0), amount + row.captured)
    nothing: View = (frozenset(), 0, Decimal("0.00"))
    assert len(billable) >= 8, len(billable)
    for patient in patients:
        stored = claims.get(patient)
        truth: View = ((frozenset((line.code, line.units) for line in stored.claim.lines),
                        sum(line.minutes for line in stored.claim.lines), estimated_total(stored.claim, pricing))
                       if stored else nothing)
        assert panel_views.get(patient, nothing) == truth, (patient, "panel", panel_views.get(patient), truth)
        assert superbills.get(patient, nothing) == truth, (patient, "superbill", superbills.get(patient), truth)
