"""Capturing time over the JSON API, authorized by the launch session, over real HTTP."""

from __future__ import annotations

import datetime as dt
import re
import threading
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import update

from smart_app.ledger.models import TimerRow
from tests.databases import one_transaction
from tests.stack import Stack, bearer, new_browser, open_chart

TZ = ZoneInfo("America/New_York")


def launch(stack: Stack, patient_id: str = "ccm-two-chronic", user: str | None = None) -> tuple[dict, str]:
    """Launch as a person would; return the page's bearer headers and its CSRF token."""
    with new_browser() as browser:
        page = open_chart(browser, stack, patient_id, user=user)
    assert page.status_code == 200, page.text
    csrf = re.search(r'<meta name="smart-app-csrf" content="([^"]+)"', page.text).group(1)
    return bearer(page.text), csrf


def api(stack: Stack, method: str, path: str, headers: dict, **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{stack.app_url}/api/v1{path}", headers=headers, timeout=20, **kwargs)


# The furthest back any test places an entry (see earlier_today).
LATEST_OFFSET = 1000


def earlier_today(minutes_ago: int) -> tuple[str, str]:
    """Local date and time `minutes_ago` minutes back, kept inside the current month so it stays open.

    Early in a month (less than `LATEST_OFFSET` minutes elapsed) the offsets are scaled down to fit the
    time elapsed, keeping their order and their relative spacing, so entries the tests place apart stay
    apart. Within about four hours of the 1st (local time), spacing of 100 minutes shrinks below the
    durations some tests log, so those tests may overlap then.
    """
    if not 0 <= minutes_ago <= LATEST_OFFSET:
        raise ValueError(f"tests place entries 0..{LATEST_OFFSET} minutes back, not {minutes_ago}")
    now = dt.datetime.now(TZ).replace(second=0, microsecond=0)
    month_start = now.replace(day=1, hour=0, minute=0)
    elapsed = (now - month_start).total_seconds() / 60
    # Keep a margin at both ends: the newest entry must have ended, the oldest start inside the month.
    scale = min(1.0, max(elapsed - 60, 0) / LATEST_OFFSET)
    back = minutes_ago if scale == 1 else 30 + round(minutes_ago * scale)
    start = max(now - dt.timedelta(minutes=back), month_start)
    return start.strftime("%Y-%m-%d"), start.strftime("%H:%M")


def age_timer(stack: Stack, timer_id: str, minutes: int) -> None:
    """Move a timer's start back: the test cannot wait real minutes for time to pass."""
    with one_transaction(stack.settings.database_url) as db:
        db.execute(update(TimerRow).where(TimerRow.id == timer_id).values(
            started_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes, seconds=5)))


def stop_running(stack: Stack, headers: dict) -> None:
    running = api(stack, "GET", "/month", headers).json()["running_timer"]
    if running:
        api(stack, "POST", f"/timers/{running['id']}/discard", headers)


def test_timer_start_stop_records_the_minutes(stack: Stack) -> None:
    headers, _ = launch(stack, user="pr-nurse")
    stop_running(stack, headers)
    started = api(stack, "POST", "/timers", headers, json={"program": "ccm", "activity": "patient-call"})
    assert started.status_code == 201, started.text
    timer_id = started.json()["timer"]["id"]
    again = api(stack, "POST", "/timers", headers, json={"program": "ccm", "activity": "record-review"})
    assert again.status_code == 409
    assert "already have a timer running" in again.json()["error"]["message"]
    age_timer(stack, timer_id, 12)
    stopped = api(stack, "POST", f"/timers/{timer_id}/stop", headers, json={})
    assert stopped.status_code == 200, stopped.text
    assert [e["minutes"] for e in stopped.json()["entries"]] == [12]
    month = api(stack, "GET", "/month", headers).json()
    assert month["running_timer"] is None
    assert any(e["id"] == stopped.json()["entries"][0]["id"] for e in month["entries"])
    assert month["role"] == "clinical-staff"


def test_a_long_timer_needs_confirmation_before_it_counts(stack: Stack) -> None:
    headers, _ = launch(stack, user="pr-nurse")
    stop_running(stack, headers)
    timer_id = api(stack, "POST", "/timers", headers,
                   json={"program": "ccm", "activity": "record-review"}).json()["timer"]["id"]
    age_timer(stack, timer_id, 95)
    refused = api(stack, "POST", f"/timers/{timer_id}/stop", headers, json={})
    assert refused.status_code == 422
    assert "longer than the 90-minute limit" in refused.json()["error"]["message"]
    adjusted = api(stack, "POST", f"/timers/{timer_id}/stop", headers, json={"confirm_long": True, "minutes": 40})
    assert adjusted.status_code == 200, adjusted.text
    assert adjusted.json()["entries"][0]["minutes"] == 40


def test_concurrent_stops_of_one_timer_record_exactly_one_entry(stack: Stack) -> None:
    headers, _ = launch(stack, user="pr-care-manager")
    stop_running(stack, headers)
    timer_id = api(stack, "POST", "/timers", headers,
                   json={"program": "ccm", "activity": "care-plan-update"}).json()["timer"]["id"]
    age_timer(stack, timer_id, 3)
    results: list[int] = []

    def stop() -> None:
        results.append(api(stack, "POST", f"/timers/{timer_id}/stop", headers, json={}).status_code)

    threads = [threading.Thread(target=stop) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] + [409] * 5
    entries = [e for e in api(stack, "GET", "/month", headers).json()["entries"] if e["timer_id"] == timer_id]
    assert len(entries) == 1


def test_manual_entry_moves_the_progress_bar(stack: Stack) -> None:
    # A patient no other test here records time for, so the bar starts where the fixture left it.
    headers, _ = launch(stack, "complex-ccm-high", user="pr-care-manager")
    with new_browser() as browser:
        before = browser.get(f"{stack.app_url}/patient", headers=headers).text
    counted = int(re.search(r'id="bar-ccm-99490" max="20" value="(\d+)"', before).group(1))
    date, time = earlier_today(300)
    made = api(stack, "POST", "/entries", headers, json={
        "program": "ccm", "activity": "medication-reconciliation", "date": date, "time": time, "minutes": 7})
    assert made.status_code == 201, made.text
    assert "Recorded" in made.json()["message"]
    with new_browser() as browser:
        after = browser.get(f"{stack.app_url}/patient", headers=headers).text
    assert counted + 7 < 20
    assert f'id="bar-ccm-99490" max="20" value="{counted + 7}"' in after


@pytest.mark.parametrize(("change", "fragment"), [
    ({"minutes": 0}, "minutes"),
    ({"minutes": -5}, "minutes"),
    ({"date": "2099-01-01"}, "future"),
    ({"activity": "juggling"}, "activity"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_entries_are_refused_with_the_field_named(stack: Stack, change: dict, fragment: str) -> None:
    headers, _ = launch(stack)
    date, time = earlier_today(200)
    body = {"program": "ccm", "activity": "patient-call", "date": date, "time": time, "minutes": 5, **change}
    response = api(stack, "POST", "/entries", headers, json=body)
    assert response.status_code in (409, 422), response.text
    assert fragment in response.json()["error"]["message"].lower()


def test_void_removes_the_minutes_and_keeps_the_history(stack: Stack) -> None:
    headers, _ = launch(stack, "pcm-single-complex", user="pr-care-manager")
    date, time = earlier_today(400)
    entry = api(stack, "POST", "/entries", headers, json={
        "program": "pcm", "activity": "patient-call", "date": date, "time": time, "minutes": 9}).json()["entries"][0]
    voided = api(stack, "POST", f"/entries/{entry['id']}/void", headers, json={"reason": "wrong patient"})
    assert voided.status_code == 200, voided.text
    month = api(stack, "GET", "/month", headers).json()
    assert entry["id"] not in [e["id"] for e in month["entries"]]
    original = next(e for e in month["history"] if e["id"] == entry["id"])
    assert original["voided_by"] and original["minutes"] == 9
    again = api(stack, "POST", f"/entries/{entry['id']}/void", headers, json={"reason": "twice"})
    assert again.status_code == 409


def test_cookie_only_changes_need_the_csrf_token(stack: Stack) -> None:
    headers, csrf = launch(stack)
    cookie = {"Cookie": f"__Host-smart_app_session={headers['Authorization'].split()[1]}"}
    assert api(stack, "GET", "/month", cookie).status_code == 200
    date, time = earlier_today(500)
    body = {"program": "ccm", "activity": "record-review", "date": date, "time": time, "minutes": 2}
    forged = api(stack, "POST", "/entries", cookie, json=body)
    assert forged.status_code == 403
    assert "did not come from the app's own page" in forged.json()["error"]["message"]
    allowed = api(stack, "POST", "/entries", {**cookie, "X-CSRF-Token": csrf}, json=body)
    assert allowed.status_code == 201, allowed.text


def test_a_session_cannot_correct_another_patients_entry(stack: Stack) -> None:
    other, _ = launch(stack, "bhi-depression-phq9", user="pr-care-manager")
    date, time = earlier_today(600)
    entry = api(stack, "POST", "/entries", other, json={
        "program": "bhi", "activity": "patient-call", "date": date, "time": time, "minutes": 4}).json()["entries"][0]
    mine, _ = launch(stack, "ccm-two-chronic", user="pr-care-manager")
    refused = api(stack, "POST", f"/entries/{entry['id']}/void", mine, json={"reason": "not mine"})
    assert refused.status_code == 404  # as for an entry that does not exist
    assert "No time entry" in refused.json()["error"]["message"] and "for this patient" in refused.text


def test_api_without_a_session_is_refused_as_json(stack: Stack) -> None:
    response = api(stack, "GET", "/month", {})
    assert response.status_code == 401
    assert "Relaunch" in response.json()["error"]["hint"]


def test_openapi_document_describes_every_operation(stack: Stack) -> None:
    doc = httpx.get(f"{stack.app_url}/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"/api/v1/timers", "/api/v1/entries", "/api/v1/entries/{entry_id}/amend"} <= set(doc["paths"])
    create = doc["paths"]["/api/v1/entries"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("EntryCreate")
    assert "minutes" in doc["components"]["schemas"]["EntryCreate"]["properties"]


def test_a_quick_log_that_would_overlap_is_refused_with_choices_never_moved(stack: Stack) -> None:
    headers, _ = launch(stack, "tcm-recent-discharge", user="pr-psych-consultant")
    body = {"program": "tcm", "activity": "patient-call", "ending_now": True, "minutes": 5}
    first = api(stack, "POST", "/entries", headers, json=body)
    assert first.status_code == 201, first.text
    a = first.json()["entries"][0]
    second = api(stack, "POST", "/entries", headers, json={**body, "activity": "record-review", "minutes": 7})
    assert second.status_code == 409, second.text
    error = second.json()["error"]
    assert "would overlap your time already recorded" in error["message"]
    assert "nothing was recorded" in error["message"]
    place, shared = error["choices"]
    assert shared["fields"] == {"shared": True}
    # The person chose to place it before: it ends where the earlier task starts, as the choice said.
    chosen = api(stack, "POST", "/entries", headers,
                 json={**body, "activity": "record-review", "minutes": 7, **place["fields"]})
    assert chosen.status_code == 201, chosen.text
    b = chosen.json()["entries"][0]
    assert dt.datetime.fromisoformat(b["start"]) + dt.timedelta(minutes=7) == dt.datetime.fromisoformat(a["start"])
    # Only two entries: the refused one recorded nothing.
    assert len(api(stack, "GET", "/month", headers).json()["entries"]) == 2


def test_a_correction_keeps_the_original_note_unless_changed(stack: Stack) -> None:
    headers, _ = launch(stack, "tcm-recent-discharge", user="pr-psych-consultant")
    date, time = earlier_today(600)
    made = api(stack, "POST", "/entries", headers, json={
        "program": "tcm", "activity": "patient-call", "date": date, "time": time, "minutes": 10,
        "note": "spoke with daughter about meds"})
    assert made.status_code == 201, made.text
    entry_id = made.json()["entries"][0]["id"]
    amended = api(stack, "POST", f"/entries/{entry_id}/amend", headers, json={
        "program": "tcm", "activity": "patient-call", "date": date, "time": time, "minutes": 12,
        "reason": "call ran longer"})
    assert amended.status_code == 200, amended.text
    replacement = amended.json()["entries"][0]
    assert replacement["note"] == "spoke with daughter about meds"
    again = api(stack, "POST", f"/entries/{replacement['id']}/amend", headers, json={
        "program": "tcm", "activity": "patient-call", "date": date, "time": time, "minutes": 12,
        "reason": "note fixed", "note": "spoke with son"})
    assert again.status_code == 200, again.text
    assert again.json()["entries"][0]["note"] == "spoke with son"
