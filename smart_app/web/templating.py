"""The Jinja2 environment (autoescaped) over the `templates/` folder."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from smart_app.paths import data_path
from smart_app.services import AppContext


def _local(instant: datetime, tz: str, fmt: str = "%b %d, %H:%M") -> str:
    return instant.astimezone(ZoneInfo(tz)).strftime(fmt)


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(str(data_path("templates"))),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["local"] = _local
    env.filters["local_date"] = lambda instant, tz: _local(instant, tz, "%Y-%m-%d")
    env.filters["local_time"] = lambda instant, tz: _local(instant, tz, "%H:%M")
    return Jinja2Templates(env=env)


TEMPLATES = _templates()


def ctx(request: Request) -> AppContext:
    """The process's services."""
    return request.app.state.ctx
