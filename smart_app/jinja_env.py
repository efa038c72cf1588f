"""The one Jinja2 environment (autoescaped) over `templates/`, for pages and superbills alike."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from smart_app.paths import data_path


def _local(instant: datetime, tz: str, fmt: str = "%b %d, %H:%M") -> str:
    return instant.astimezone(ZoneInfo(tz)).strftime(fmt)


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared environment, with filters for local times."""
    env = Environment(loader=FileSystemLoader(str(data_path("templates"))),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["local"] = _local
    env.filters["local_date"] = lambda instant, tz: _local(instant, tz, "%Y-%m-%d")
    env.filters["local_time"] = lambda instant, tz: _local(instant, tz, "%H:%M")
    return env
