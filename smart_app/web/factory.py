"""The app built from the environment, for `smart-app serve --workers N` and any ASGI server.

Each worker process calls `create_app_from_env` itself: settings from `SMART_APP_*`, its own engine and
connection pool, the organization files, and the start-up warm-up (rule sets, ICD-10-CM tables, `gc.freeze`).
With gunicorn: `gunicorn -k uvicorn_worker.UvicornWorker 'smart_app.web.factory:create_app_from_env()'`; with
uvicorn: `uvicorn --factory smart_app.web.factory:create_app_from_env --workers 4`.
"""

from __future__ import annotations

from starlette.applications import Starlette

from smart_app.db import make_engine, require_current
from smart_app.launch.organizations import load_directory
from smart_app.log_redaction import install_log_redaction
from smart_app.logs import configure_logging
from smart_app.settings import load_settings
from smart_app.warmup import prepare_process
from smart_app.web.app import create_app


def create_app_from_env() -> Starlette:
    """One worker's app, configured from the environment and warmed up before its first request."""
    settings = load_settings()
    configure_logging(settings)
    engine = make_engine(settings.database_url)
    # A worker on a database that is not migrated would fail request by request: refuse to start instead.
    require_current(engine)
    organizations = load_directory(settings.launch_dir)
    app = create_app(settings, organizations, engine)
    prepare_process(org.rule_set for org in organizations)
    install_log_redaction()
    return app
