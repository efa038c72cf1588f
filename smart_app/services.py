"""The shared services of one process (web server, CLI job or worker): database, HTTP pool, token box."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from smart_app.crypto import TokenBox
from smart_app.db import make_engine, session_factory
from smart_app.launch.flow import LaunchDeps
from smart_app.settings import Settings

# EHRs inside hospital networks can be slow; a page should still fail within a human wait.
EHR_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


@dataclass
class AppContext:
    """Per-process services: the database, one HTTP client pool, the token box."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    http: httpx.AsyncClient
    tokens: TokenBox

    @property
    def launch(self) -> LaunchDeps:
        """The launch room's dependencies."""
        return LaunchDeps(sessions=self.sessions, http=self.http, tokens=self.tokens,
                          redirect_uri=self.settings.redirect_uri,
                          session_lifetime=timedelta(minutes=self.settings.session_minutes))


def build_context(settings: Settings, engine: Engine | None = None) -> AppContext:
    """Create the services for one process."""
    engine = engine or make_engine(settings.database_url)
    return AppContext(settings=settings, engine=engine, sessions=session_factory(engine),
                      http=httpx.AsyncClient(timeout=EHR_TIMEOUT, follow_redirects=False),
                      tokens=TokenBox(settings.secret_key))
