"""FHIR date/dateTime values as half-open UTC ranges, for search comparisons."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

MIN = datetime.min.replace(tzinfo=UTC)
MAX = datetime.max.replace(tzinfo=UTC)

_YEAR = re.compile(r"^\d{4}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")

Range = tuple[datetime, datetime]


def parse_range(text: str) -> Range:
    """The instants a date or dateTime of this precision covers; ValueError when malformed."""
    if _YEAR.match(text):
        start = datetime(int(text), 1, 1, tzinfo=UTC)
        return start, start.replace(year=start.year + 1)
    if _MONTH.match(text):
        year, month = int(text[:4]), int(text[5:7])
        start = datetime(year, month, 1, tzinfo=UTC)
        days = calendar.monthrange(year, month)[1]
        return start, start + timedelta(days=days)
    if _DAY.match(text):
        start = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return start, start + timedelta(days=1)
    match = _DATETIME.match(text)
    if match:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # a search value without zone: read it as UTC
        step = timedelta(minutes=1) if match.group(1) is None else timedelta(seconds=1)
        return moment, moment + step
    raise ValueError(f"not a FHIR date or dateTime: {text!r}")


def value_range(value: object) -> Range | None:
    """The range of a resource's date, dateTime, instant or Period value; None if unusable."""
    try:
        if isinstance(value, str):
            return parse_range(value)
        if isinstance(value, dict) and ("start" in value or "end" in value):
            lo = parse_range(value["start"])[0] if value.get("start") else MIN
            hi = parse_range(value["end"])[1] if value.get("end") else MAX
            return lo, hi
    except ValueError:
        return None
    return None


PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def split_prefix(text: str) -> tuple[str, str]:
    """Split `ge2026-11-01` into ("ge", "2026-11-01"); no prefix means eq."""
    if len(text) > 2 and text[:2] in PREFIXES and not text[:2].isdigit():
        return text[:2], text[2:]
    return "eq", text


def compare(prefix: str, target: Range, search: Range) -> bool:
    """FHIR date-search semantics between a resource's range and the search value's range."""
    t_lo, t_hi = target
    s_lo, s_hi = search
    if prefix == "eq":
        return s_lo <= t_lo and t_hi <= s_hi
    if prefix == "ne":
        return not (s_lo <= t_lo and t_hi <= s_hi)
    if prefix == "gt":
        return t_hi > s_hi
    if prefix == "lt":
        return t_lo < s_lo
    if prefix == "ge":
        return t_hi > s_lo
    if prefix == "le":
        return t_lo < s_hi
    if prefix == "sa":
        return t_lo >= s_hi
    if prefix == "eb":
        return t_hi <= s_lo
    return t_lo < s_hi and t_hi > s_lo  # ap: overlap is close enough for a sandbox
