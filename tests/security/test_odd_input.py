"""Threat: odd input (NUL characters, year 0000 or 0001, 5,000-digit numbers) gives a 500, stores something one
database refuses and the other keeps, or fills the log. Every such request gets a 4xx saying what is accepted,
and nothing is stored, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import func, select

from smart_app.ledger.models import TimeEntryRow, TimerRow
from smart_app.ledger.records import ConsentRow, ScaleRow
from tests.security.helpers import Launched, database, launch, manual_entry
from tests.stack import Stack, biller_headers

NUL = "before\u0000after"


def counts(stack: Stack) -> tuple[int, ...]:
    with database(stack) as db:
        return tuple(db.scalar(select(func.count()).select_from(t)) or 0
                     for t in (TimeEntryRow, TimerRow, ConsentRow, ScaleRow))


@pytest.fixture(scope="module")
def nurse(secure_stack: Stack) -> Launched:
    return launch(secure_stack, "ccm-two-chronic", user="pr-nurse", address="127.0.0.33")


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/entries", {**manual_entry(5), "note": NUL}, "note"),
    ("/timers", {"program": "ccm", "activity": "patient-call", "note": NUL}, "note"),
    ("/consents", {"program": "ccm", "method": "verbal", "explained_availability": True,
                   "explained_cost_sharing": True, "explained_right_to_stop": True,
                   "explained_one_practitioner": True, "obtained_on": "TODAY", "note": NUL}, "note"),
    ("/scales", {"scale": "PHQ-9", "score": 4, "date": "TODAY", "note": NUL}, "note"),
    ("/attestations", {"condition_id": NUL, "chronic": True}, "condition_id"),
])
def test_a_nul_character_in_any_text_is_refused_and_nothing_is_stored(secure_stack: Stack, nurse: Launched,
                                                                       path: str, body: dict, field: str) -> None:
    before = counts(secure_stack)
    body = {key: today() if value == "TODAY" else value for key, value in body.items()}
    answer = nurse.api("POST", path, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["message"].startswith(f"{field}: ") and "NUL character" in error["message"], error
    assert counts(secure_stack) == before


def test_a_nul_character_in_the_address_is_refused(secure_stack: Stack, nurse: Launched) -> None:
    made = nurse.api("POST", "/entries", json=manual_entry(4))
    entry_id = made.json()["entries"][0]["id"]
    for answer in (nurse.api("POST", f"/entries/{entry_id}%00/void", json={"reason": "wrong patient"}),
                   httpx.get(f"{secure_stack.app_url}/panel", params={"care_manager": "Practitioner/x\u0000"},
                             headers=nurse.bearer),
                   httpx.get(f"{secure_stack.app_url}/launch", params={"iss": "https://x\u0000", "launch": "l"})):
        assert answer.status_code == 400, answer.text
        assert "NUL character (%00)" in answer.text and "Remove it from the address" in answer.text
    # The entry was not voided.
    assert nurse.api("GET", "/month").json()["minutes_by_program"]["ccm"] >= 4


@pytest.mark.parametrize(("day", "fragment"), [("0001-01-01", "more than a year ago"),
                                               ("9999-12-31", "in the future")])
def test_entries_dated_outside_a_sane_window_are_refused(secure_stack: Stack, nurse: Launched, day: str,
                                                         fragment: str) -> None:
    before = counts(secure_stack)
    for allow_closed_month in (False, True):
        answer = nurse.api("POST", "/entries", json={"program": "ccm", "activity": "patient-call", "date": day,
                                                     "time": "09:00", "minutes": 10,
                                                     "allow_closed_month": allow_closed_month})
        assert answer.status_code == 422, answer.text
        assert fragment in answer.json()["error"]["message"]
        assert "the year" in answer.json()["error"]["hint"]
    assert counts(secure_stack) == before


def test_odd_months_pages_and_numbers_get_a_4xx_saying_what_is_accepted(secure_stack: Stack,
                                                                        nurse: Launched) -> None:
    panel = f"{secure_stack.app_url}/panel"
    biller = biller_headers(secure_stack, address="127.0.0.60")
    month = httpx.get(panel, params={"month": "0000-01"}, headers=biller)
    assert month.status_code == 400
    assert "Write the month as YYYY-MM, from 2000-01 to 2099-12" in month.text
    far = httpx.get(panel, params={"month": "2150-01"}, headers=biller)
    assert far.status_code == 400 and "outside the months the app keeps, 2000-01 to 2099-12" in far.text
    page = httpx.get(panel, params={"page": "9" * 5000}, headers=biller)
    assert page.status_code == 400
    assert "Use a whole number from 1 to 999999" in page.text and "9" * 100 not in page.text
    rollup = nurse.api("POST", "/billing/rollup", json={"month": "0000-01", "source": "cache"}, headers=biller)
    assert rollup.status_code == 422 and "from 2000-01 to 2099-12" in rollup.json()["error"]["message"]
    minutes = nurse.api("POST", "/entries", content=b'{"program": "ccm", "activity": "patient-call", '
                                                    b'"ending_now": true, "minutes": ' + b"7" * 5000 + b"}",
                        headers={**nurse.bearer, "Content-Type": "application/json"})
    assert minutes.status_code == 422 and "not JSON the app can read" in minutes.json()["error"]["message"]
    huge = nurse.api("POST", "/entries", json={"program": "ccm", "activity": "patient-call", "ending_now": True,
                                               "minutes": 10 ** 30})
    assert huge.status_code == 422 and "at most 1440 minutes" in huge.json()["error"]["message"]
