"""The CoCM fixture patient (a later month of an episode): CoCM is open on the page, the behavioral health care
manager can log CoCM time, and 60 minutes make a 99493 claim. Over the stack, SQLite and PostgreSQL."""

from __future__ import annotations

import re

from smart_app.billing.claims import month_claims
from smart_app.db import transaction
from smart_app.services import build_context
from tests.billing.test_rollup import MONTH
from tests.stack import Stack, biller_headers, new_browser
from tests.test_capture_api import api, earlier_today, launch
from tests.test_patient_page import card

PATIENT = "cocm-depression-anxiety"
TITLE = "Psychiatric collaborative care model"


def _page(stack: Stack, headers: dict) -> str:
    with new_browser() as browser:
        return browser.get(f"{stack.app_url}/patient", headers=headers).text


def test_the_cocm_patient_gets_cocm_time_and_a_99493_claim(stack: Stack) -> None:
    headers, _ = launch(stack, PATIENT, user="pr-bh-care-manager")
    html = _page(stack, headers)
    cocm = card(html, TITLE)
    # A later month of the episode: on track for the subsequent-month code, not folded under the other programs.
    assert "status-in-progress" in cocm, cocm
    assert "bill the subsequent-month code" not in cocm
    other = html.split('<details class="other-programs">', 1)[1] if 'class="other-programs"' in html else ""
    assert TITLE not in other
    select = re.search(r'<select name="program" data-program-select>(.*?)</select>', html, re.S).group(1)
    assert '<option value="cocm">' in select

    for minutes, ago in ((35, 900), (25, 800)):
        date, time = earlier_today(ago)
        made = api(stack, "POST", "/entries", headers, json={
            "program": "cocm", "activity": "behavioral-assessment", "date": date, "time": time, "minutes": minutes})
        assert made.status_code == 201, made.text
    assert "99493" in card(_page(stack, headers), TITLE)

    biller = biller_headers(stack)
    run = api(stack, "POST", "/billing/rollup", biller, json={"month": MONTH, "source": "ehr"})
    assert run.status_code == 200 and not run.json()["errors"], run.text
    app = build_context(stack.settings)
    try:
        with transaction(app.sessions) as db:
            claim = next(c for c in month_claims(db, stack.organization.id, MONTH) if c.patient_id == PATIENT)
    finally:
        app.engine.dispose()
    assert [(line.code, line.units) for line in claim.claim.lines] == [("99493", 1)]
    assert claim.claim.lines[0].minutes == 60
