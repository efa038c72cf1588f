"""Starlette's template responses over the shared Jinja2 environment."""

from __future__ import annotations

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from smart_app.jinja_env import environment
from smart_app.services import AppContext

TEMPLATES = Jinja2Templates(env=environment())


def ctx(request: Request) -> AppContext:
    """The process's services."""
    services: AppContext = request.app.state.ctx
    return services
