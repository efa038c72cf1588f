"""Minutes-to-units arithmetic for time-based codes (full periods or the CPT midpoint rule)."""

from __future__ import annotations

from smart_app.rules.schema import Code


def base_met(minutes: int, base: Code) -> bool:
    """True when `minutes` reach the base code's billable minimum."""
    assert base.time.min_minutes is not None
    return minutes >= base.time.min_minutes


def addon_units(minutes: int, base: Code, addon: Code) -> int:
    """Units of `addon` that `minutes` support after the base code's period, within the cap."""
    b, a, a_min = base.time.unit_minutes, addon.time.unit_minutes, addon.time.min_minutes
    assert b is not None and a is not None and a_min is not None
    # Unit k is earned once the time passes the base period plus k-1 whole add-on periods plus
    # the add-on's minimum (its full length, or its midpoint under the CPT midpoint rule).
    units = 0
    while units < addon.max_units and minutes >= b + units * a + a_min:
        units += 1
    return units


def minutes_for_next_unit(minutes: int, base: Code, addon: Code) -> int | None:
    """Minutes still needed for one more add-on unit; None when the cap is reached."""
    units = addon_units(minutes, base, addon)
    if units >= addon.max_units:
        return None
    b, a, a_min = base.time.unit_minutes, addon.time.unit_minutes, addon.time.min_minutes
    assert b is not None and a is not None and a_min is not None
    return b + units * a + a_min - minutes


def allocation(minutes: int, base: Code, addon: Code | None, units: int) -> list[int]:
    """Minutes behind the base code, then behind each add-on unit (they never overlap)."""
    b = base.time.unit_minutes
    assert b is not None
    out = [min(minutes, b)]
    rest = minutes - out[0]
    if addon is not None:
        a = addon.time.unit_minutes
        assert a is not None
        for _ in range(units):
            take = min(a, rest)
            out.append(take)
            rest -= take
    return out
