"""One decision per patient-month: the patient page, the rollup, the biller page, the superbill and the panel show
the codes, units, counted minutes and estimates the rules' evaluator decides, for every fixture patient (real HTTP to
the sandbox EHR, SQLite and PostgreSQL) and for generated facts (the panel, the rollup and the superbill)."""

from __future__ import annotations

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
from smart_app.billing.pricing import organization_pricing
from smart_app.billing.superbill import estimated_total
from smart_app.db import transaction
from smart_app.paths import data_path
from smart_app.services import build_context
from tests.stack import Stack, bearer, biller_headers, new_browser, open_chart
from tests.test_capture_api import api
from tests.test_consent_capture import ALL_ELEMENTS

TZ = ZoneInfo("America/New_York")
PATIENTS = sorted(p.stem for p in Path(data_path("fixtures")).glob("*.json") if p.stem != "organization")
DOROTHY = "ccm-no-consent"

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
