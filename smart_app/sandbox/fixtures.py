"""Seeding the store from fixture Bundles, shifting their dates so "this month" stays current."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from smart_app.sandbox.store import FhirStore

ANCHOR = date(2026, 11, 1)  # fixtures are written as if "now" were November 2026
NEVER_SHIFTED = frozenset({"birthDate"})

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)$")


def shift_days(today: date | None = None) -> int:
    """Days from the anchor month to the first day of the current UTC month."""
    today = today or datetime.now(UTC).date()
    return (today.replace(day=1) - ANCHOR).days


def shift_value(text: str, days: int) -> str:
    """`text` moved by `days` if it is a date, year-month or dateTime; otherwise unchanged."""
    if match := _DATETIME.match(text):
        day = date.fromisoformat(match.group(1)) + timedelta(days=days)
        return day.isoformat() + match.group(2)
    if _DATE.match(text):
        try:
            return (date.fromisoformat(text) + timedelta(days=days)).isoformat()
        except ValueError:
            return text
    if match := _MONTH.match(text):
        first = date(int(match.group(1)), int(match.group(2)), 1) + timedelta(days=days)
        return first.isoformat()[:7]
    return text


def shift_dates(node: Any, days: int, key: str = "") -> Any:
    """Recursively shift every date-like string in `node` (birthDate excepted)."""
    if isinstance(node, dict):
        return {k: shift_dates(v, days, k) for k, v in node.items()}
    if isinstance(node, list):
        return [shift_dates(v, days, key) for v in node]
    if isinstance(node, str) and key not in NEVER_SHIFTED and days:
        return shift_value(node, days)
    return node


def bundle_resources(path: Path) -> list[dict]:
    """The resources in a fixture file (a Bundle, or a single resource)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("resourceType") != "Bundle":
        return [data]
    return [e["resource"] for e in data.get("entry", []) if isinstance(e.get("resource"), dict)]


def load_fixtures(store: FhirStore, folder: Path, shift: bool = True) -> int:
    """Insert every fixture resource that is not stored yet; return how many were inserted."""
    if not folder.is_dir():
        raise FileNotFoundError(f"sandbox fixtures folder {folder} does not exist")
    days = shift_days() if shift else 0
    inserted = 0
    with store.db.transaction():
        for path in sorted(folder.glob("*.json")):
            for resource in bundle_resources(path):
                if not resource.get("resourceType") or not resource.get("id"):
                    raise ValueError(f"{path.name}: every fixture resource needs an id")
                if store.exists(resource["resourceType"], resource["id"]):
                    continue
                store.insert_if_absent(shift_dates(resource, days))
                inserted += 1
    return inserted
