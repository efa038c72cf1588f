"""Pure interval helpers: half-open intervals, shared minutes, and the first conflicting entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from smart_app.ledger.overlap import first_conflict, overlap_minutes, overlaps
from smart_app.ledger.values import Entry

T = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def at(minute: int) -> datetime:
    return T + timedelta(minutes=minute)


def view(entry_id: str, start: int, minutes: int, **changes: object) -> Entry:
    fields = dict(id=entry_id, organization_id="o", patient_id="p", performer="Practitioner/1", role="clinical-staff",
                  program="ccm", activity="record-review", start=at(start), minutes=minutes, month="2026-11", note="",
                  source="manual", shared=False, kind="entry", corrects_id=None, reason="", recorded_by="x",
                  recorded_at=T, late=False, split_group=None, timer_id=None)
    fields.update(changes)
    return Entry(**fields)  # type: ignore[arg-type]


def test_half_open_intervals() -> None:
    assert overlaps(at(0), at(10), at(9), at(20))
    assert not overlaps(at(0), at(10), at(10), at(20))
    assert overlap_minutes(at(0), at(10), at(5), at(30)) == 5
    assert overlap_minutes(at(0), at(10), at(20), at(30)) == 0


def test_first_conflict_skips_ignored_and_non_counting_entries() -> None:
    existing = [view("late", 8, 10), view("early", 2, 5), view("void", 0, 30, kind="void"),
                view("old", 0, 30, amended_by="new")]
    assert first_conflict(at(0), at(10), existing).id == "early"
    assert first_conflict(at(0), at(10), existing, frozenset({"early"})).id == "late"
    assert first_conflict(at(30), at(40), existing) is None
