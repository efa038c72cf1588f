"""Server-side timers: one per person, the long-run cap, discard, short runs, and concurrent stops."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import transaction
from smart_app.ledger.entries import record_entry
from smart_app.ledger.errors import (
    InvalidEntry,
    OverlapError,
    TimerAlreadyStopped,
    TimerNeedsConfirmation,
    TimerRunning,
)
from smart_app.ledger.models import TimeEntryRow
from smart_app.ledger.timers import discard_timer, get_timer, running_timer, start_timer, stop_timer
from smart_app.ledger.values import Timer
from tests.ledger.conftest import DOCTOR, NOW, NURSE, ORG, TZ, entry, timer_input

START = NOW - timedelta(minutes=30)


def started(factory: sessionmaker[Session], at: datetime = START, **changes: object) -> Timer:
    with transaction(factory) as db:
        return start_timer(db, timer_input(**changes), timezone=TZ, now=at)


def stop(factory: sessionmaker[Session], timer: Timer, at: datetime, **kwargs: object):  # noqa: ANN201
    with transaction(factory) as db:
        return stop_timer(db, ORG, timer.id, by=timer.performer, timezone=TZ, now=at, **kwargs)  # type: ignore[arg-type]


def entry_count(factory: sessionmaker[Session]) -> int:
    with factory() as db:
        return db.scalar(select(func.count()).select_from(TimeEntryRow)) or 0


def test_stop_records_whole_minutes_from_the_timer(factory) -> None:
    timer = started(factory, at=START + timedelta(seconds=40))
    with factory() as db:
        assert running_timer(db, ORG, NURSE) == timer
    result = stop(factory, timer, START + timedelta(minutes=12, seconds=39))  # 11 min 59 s
    (recorded,) = result.entries
    assert recorded.minutes == 11 and recorded.source == "timer" and recorded.timer_id == timer.id
    assert recorded.start == START and recorded.program == "ccm" and recorded.activity == "patient-call"
    assert result.timer.outcome == "recorded" and result.timer.minutes == 11 and not result.timer.running
    assert "Recorded 11 minutes" in result.message
    with factory() as db:
        assert running_timer(db, ORG, NURSE) is None


def test_one_running_timer_per_person(factory) -> None:
    first = started(factory)
    with pytest.raises(TimerRunning) as caught:
        started(factory, patient_id="pat-2")
    assert caught.value.timer == first and caught.value.status_code == 409
    assert "Stop it" in caught.value.hint and "discard" in caught.value.hint
    other = started(factory, performer=DOCTOR, role="billing-practitioner")  # someone else may time too
    assert other.running


def test_a_long_timer_needs_confirmation_before_its_time_counts(factory) -> None:
    timer = started(factory, at=NOW - timedelta(minutes=125))
    with pytest.raises(TimerNeedsConfirmation) as caught:
        stop(factory, timer, NOW)
    assert caught.value.elapsed_minutes == 125 and caught.value.cap_minutes == 90
    assert "2 h 5 min" in caught.value.message and "90-minute" in caught.value.message
    assert "confirm" in caught.value.hint and "discard" in caught.value.hint
    with factory() as db:
        assert get_timer(db, ORG, timer.id).running  # nothing changed
    with pytest.raises(InvalidEntry, match="between 1 and 125 minutes"):
        stop(factory, timer, NOW, confirm_long=True, minutes=200)
    result = stop(factory, timer, NOW, confirm_long=True, minutes=60)
    assert result.entries[0].minutes == 60 and result.timer.minutes == 60


def test_the_cap_is_configurable_and_confirmation_records_everything(factory) -> None:
    timer = started(factory, at=NOW - timedelta(minutes=40))
    with pytest.raises(TimerNeedsConfirmation):
        stop(factory, timer, NOW, cap_minutes=30)
    assert stop(factory, timer, NOW, cap_minutes=30, confirm_long=True).entries[0].minutes == 40


def test_discard_records_no_time_and_remembers_it(factory) -> None:
    timer = started(factory)
    with transaction(factory) as db:
        discarded = discard_timer(db, ORG, timer.id, by=NURSE, now=NOW)
    assert discarded.outcome == "discarded" and discarded.closed_by == NURSE and discarded.stopped_at == NOW
    assert entry_count(factory) == 0
    with pytest.raises(TimerAlreadyStopped, match="already discarded"):
        stop(factory, timer, NOW)
    assert started(factory, at=NOW).running  # the person can start again


def test_under_a_minute_records_nothing_and_says_so(factory) -> None:
    timer = started(factory)
    result = stop(factory, timer, START + timedelta(seconds=59))
    assert result.entries == () and "nothing was recorded" in result.message
    assert result.timer.outcome == "too-short" and not result.timer.running
    assert entry_count(factory) == 0


def test_a_timer_overlapping_recorded_time_is_refused_and_keeps_running(factory) -> None:
    with transaction(factory) as db:
        record_entry(db, entry(start=START + timedelta(minutes=5), minutes=5), timezone=TZ, now=NOW)
    timer = started(factory)
    with pytest.raises(OverlapError):
        stop(factory, timer, NOW)
    with factory() as db:
        assert get_timer(db, ORG, timer.id).running
    assert stop(factory, timer, NOW, shared=True).entries[0].shared


def test_a_timer_across_month_end_is_split_without_asking(factory) -> None:
    start = datetime(2026, 11, 1, 3, 45, tzinfo=UTC)  # 23:45 EDT on Oct 31
    timer = started(factory, at=start)
    result = stop(factory, timer, start + timedelta(minutes=30))
    assert [(e.month, e.minutes) for e in result.entries] == [("2026-10", 15), ("2026-11", 15)]


def test_concurrent_stops_give_exactly_one_entry(factory) -> None:
    timer = started(factory)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def press_stop() -> None:
        barrier.wait()
        try:
            result = stop(factory, timer, NOW)
            outcomes.append(f"recorded {len(result.entries)}")
        except TimerAlreadyStopped:
            outcomes.append("already stopped")

    threads = [threading.Thread(target=press_stop) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already stopped"] * 7 + ["recorded 1"]
    assert entry_count(factory) == 1


def test_concurrent_starts_leave_one_running_timer(factory) -> None:
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def press_start(n: int) -> None:
        barrier.wait()
        try:
            started(factory, patient_id=f"pat-{n}")
            outcomes.append("started")
        except TimerRunning:
            outcomes.append("running")

    threads = [threading.Thread(target=press_start, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["running"] * 5 + ["started"]
