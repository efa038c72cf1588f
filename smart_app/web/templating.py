"""The Jinja2 environment (autoescaped) over the `templates/` folder."""

from __future__ import annotations

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from smart_app.paths import data_path
from smart_app.web.context import AppContext


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(str(data_path("templates"))),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    return Jinja2Templates(env=env)


TEMPLATES = _templates()


def ctx(request: Request) -> AppContext:
    """The process's services."""
    return request.app.state.ctx
