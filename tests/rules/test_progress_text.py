"""The progress line a care manager reads under each code's bar."""

from __future__ import annotations

from smart_app.rules.decision import Progress


def test_progress_below_the_target_counts_up_to_it() -> None:
    assert Progress("99490", 14, 20).text() == "99490: 14 of 20 minutes"


def test_a_reached_target_that_is_not_billed_does_not_read_as_more_than_all() -> None:
    # A code blocked by missing evidence keeps its bar; "25 of 20 minutes" read as an error of the app.
    assert Progress("99490", 25, 20).text() == "99490: 25 minutes, the 20 needed are reached"


def test_add_on_units_and_the_cap() -> None:
    assert Progress("99439", 25, 40, unit=2).text() == "99439: 15 more minutes for unit 2"
    assert Progress("99439", 60, 60, unit=2, at_cap=True).text() == "99439: at the cap of 2 units"
