"""Threat: a session id stolen (or kept) from one patient's chart is used to read or change another patient.

The same clinician launches the app for patient X and for patient Y. X's session handle, presented
with Y's ids, must give nothing about Y: the API refuses corrections of Y's entries and answers
only about X, and the page shows X whatever patient is asked for.
"""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from smart_app.ledger.records import ConsentRow
from smart_app.paths import data_path
from tests.security.helpers import Launched, database, launch, manual_entry
from tests.stack import Stack

X, Y = "pcm-single-complex", "tcm-recent-discharge"
USER = "pr-care-manager"


def family_name(patient_id: str) -> str:
    bundle = json.loads((data_path("fixtures") / f"{patient_id}.json").read_text())
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    return patient["name"][0]["family"]


def test_a_session_for_one_patient_cannot_read_or_correct_anothers_entries(secure_stack: Stack) -> None:
    at_y = launch(secure_stack, Y, user=USER)
    made = at_y.api("POST", "/entries", json=manual_entry(6))
    assert made.status_code == 201, made.text
    y_entry = made.json()["entries"][0]["id"]
    today = dt.datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    consent = at_y.api("POST", "/consents", json={
        "program": "pcm", "method": "verbal", "obtained_on": today, "explained_availability": True,
        "explained_cost_sharing": True, "explained_right_to_stop": True, "explained_one_practitioner": True})
    assert consent.status_code == 201, consent.text
    y_consent = consent.json()["consent"]["id"]

    at_x = launch(secure_stack, X, user=USER)
    month = at_x.api("GET", "/month", params={"patient": Y, "patient_id": Y}).json()
    assert month["patient"] == X
    assert y_entry not in {e["id"] for e in month["entries"] + month["history"]}

    # Another patient's record answers exactly as a record that does not exist: nothing of it is revealed.
    for record_id, path, body in ((y_entry, "/entries/{}/amend", {**manual_entry(), "reason": "wrong chart"}),
                                  (y_entry, "/entries/{}/void", {"reason": "wrong chart"}),
                                  (y_consent, "/consents/{}/withdraw", {"on": today})):
        refused = at_x.api("POST", path.format(record_id), json=body)
        unknown = at_x.api("POST", path.format("no-such-record"), json=body)
        assert refused.status_code == unknown.status_code == 404, (path, refused.text)
        assert (refused.json()["error"]["message"].replace(record_id, "ID")
                == unknown.json()["error"]["message"].replace("no-such-record", "ID"))

    after = at_y.api("GET", "/month").json()
    entry = next(e for e in after["entries"] if e["id"] == y_entry)
    assert entry["minutes"] == 6 and entry["effective"]
    with database(secure_stack) as db:
        assert db.scalars(select(ConsentRow.id).where(ConsentRow.withdraws_id == y_consent)).all() == []


@pytest.fixture(scope="module")
def at_x(secure_stack: Stack) -> Launched:
    """A session launched for patient X, shared by the read-only tests below."""
    return launch(secure_stack, X, user=USER)


@pytest.mark.parametrize("how", ["query", "fragment", "form"])
def test_the_page_always_shows_the_sessions_own_patient(secure_stack: Stack, at_x: Launched, how: str) -> None:
    url = f"{secure_stack.app_url}/patient"
    asks_for_y = {"patient": Y, "patient_id": Y, "launch_patient": Y}
    if how == "form":
        page = httpx.post(url, data={**asks_for_y, "session_handle": at_x.handle}, timeout=20,
                          headers={"Origin": secure_stack.app_url})
    else:
        params = {**asks_for_y, **({"fragment": "1"} if how == "fragment" else {})}
        page = httpx.get(url, params=params, headers=at_x.bearer, timeout=20)
    assert page.status_code == 200, page.text
    assert family_name(X) in page.text
    assert family_name(Y) not in page.text


def test_a_session_for_one_patient_does_not_see_anothers_timer_details(secure_stack: Stack) -> None:
    at_y = launch(secure_stack, Y, user="pr-bh-care-manager")
    started = at_y.api("POST", "/timers", json={"program": "ccm", "activity": "record-review",
                                                "note": "called daughter about fall"})
    assert started.status_code == 201, started.text
    try:
        at_x = launch(secure_stack, X, user="pr-bh-care-manager")
        running = at_x.api("GET", "/month").json()["running_timer"]
        assert running is None or (running.get("patient_id") in (None, X) and "daughter" not in json.dumps(running))
    finally:
        at_y.api("POST", f"/timers/{started.json()['timer']['id']}/discard")


def test_a_session_for_one_patient_cannot_stop_or_discard_a_timer_running_for_another(secure_stack: Stack) -> None:
    at_y = launch(secure_stack, Y, user="pr-bh-care-manager")
    started = at_y.api("POST", "/timers", json={"program": "ccm", "activity": "record-review",
                                                "note": "called daughter about fall"})
    assert started.status_code == 201, started.text
    timer_id = started.json()["timer"]["id"]
    try:
        at_x = launch(secure_stack, X, user="pr-bh-care-manager")
        for action, body in (("stop", {"minutes": 5}), ("discard", None)):
            refused = at_x.api("POST", f"/timers/{timer_id}/{action}", json=body)
            unknown = at_x.api("POST", f"/timers/no-such-timer/{action}", json=body)
            # The same answer as for a timer that does not exist: no patient id, activity or note of Y's timer.
            assert refused.status_code == unknown.status_code == 404, refused.text
            assert refused.json()["error"]["message"].replace(timer_id, "ID") == \
                unknown.json()["error"]["message"].replace("no-such-timer", "ID")
            assert Y not in refused.text and "daughter" not in refused.text and "record-review" not in refused.text
        still = at_y.api("GET", "/month").json()["running_timer"]
        assert still is not None and still["id"] == timer_id and still["stopped_at"] is None
    finally:
        at_y.api("POST", f"/timers/{timer_id}/discard")
