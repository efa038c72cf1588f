"""`smart-app demo`: the sandbox EHR and the app side by side on SQLite, for a first look."""

from __future__ import annotations

import asyncio
import webbrowser
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from sqlalchemy import Engine

from smart_app.crypto import TokenBox
from smart_app.db import make_engine, session_factory, transaction, upgrade
from smart_app.errors import ConfigError
from smart_app.launch.organizations import Organization, load_directory, with_overrides
from smart_app.launch.purge import purge_expired
from smart_app.launch.registration import registration_for
from smart_app.log_redaction import install_log_redaction
from smart_app.paths import data_path
from smart_app.sandbox import SandboxClient, SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from smart_app.settings import Settings, load_settings
from smart_app.warmup import prepare_process
from smart_app.web.app import create_app

DEMO_ORG = "sandbox"
FIRST_PATIENT = "ccm-two-chronic"


@dataclass(frozen=True)
class DemoPlan:
    """Where each server of the demo listens and what it is configured with."""

    settings: Settings
    sandbox: SandboxConfig
    organization: Organization
    engine: Engine
    app_port: int
    sandbox_port: int

    @property
    def chart_url(self) -> str:
        """The sandbox chart of the first scenario patient, with the app inside."""
        return f"{self.sandbox.base_url}/ehr/chart/{FIRST_PATIENT}"


def sandbox_org(settings: Settings, sandbox_base: str) -> Organization:
    """The demo organization from `launch/sandbox.toml`, pointed at the running sandbox."""
    org = next((o for o in load_directory(settings.launch_dir) if o.id == DEMO_ORG), None)
    if org is None:
        raise ConfigError("No organization file with id 'sandbox' was found for the demo.",
                          "Restore launch/sandbox.toml or point SMART_APP_LAUNCH_DIR at a folder with it.")
    return with_overrides(org, issuer=f"{sandbox_base}/fhir", frame_origins=(sandbox_base,))


def sandbox_client(engine: Engine, settings: Settings, org: Organization) -> SandboxClient:
    """Register the app with the sandbox as an EHR administrator would, creating a key if needed."""
    with transaction(session_factory(engine)) as db:
        reg = registration_for(db, TokenBox(settings.secret_key), org, settings.redirect_uri,
                               settings.launch_url, create_key=True)
    return SandboxClient(client_id=reg.client_id, redirect_uris=[reg.redirect_uri],
                         auth_method=reg.auth_method, jwks=reg.jwks)


def plan_demo(port: int, data_dir: Path | None = None, host: str = "localhost") -> DemoPlan:
    """Configure the app on `port` and the sandbox EHR on `port + 1`, sharing one data folder."""
    # Only the demo may make up a secret key (kept in its data folder); `serve` refuses to start without one.
    settings = load_settings(base_url=f"http://{host}:{port}", data_dir=data_dir, generate_secret=True)
    sandbox_base = f"http://{host}:{port + 1}"
    org = sandbox_org(settings, sandbox_base)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    purge_expired(session_factory(engine))
    sandbox = SandboxConfig(base_url=sandbox_base, fixtures_dir=data_path("fixtures"),
                            database=str(settings.data_dir / "sandbox.db"),
                            clients=[sandbox_client(engine, settings, org)],
                            app_launch_url=settings.launch_url)
    return DemoPlan(settings=settings, sandbox=sandbox, organization=org, engine=engine,
                    app_port=port, sandbox_port=port + 1)


async def _serve_both(plan: DemoPlan, bind: str) -> None:
    servers = [
        uvicorn.Server(uvicorn.Config(create_sandbox(plan.sandbox), host=bind,
                                      port=plan.sandbox_port, log_level="warning")),
        uvicorn.Server(uvicorn.Config(create_app(plan.settings, [plan.organization], plan.engine),
                                      host=bind, port=plan.app_port, log_level="warning")),
    ]
    # After uvicorn has set up its loggers, which keeps a logger's filters.
    install_log_redaction()
    await asyncio.gather(*(server.serve() for server in servers))


def run_demo(port: int, open_browser: bool, data_dir: Path | None = None) -> None:
    """Start both servers, print where to click, and serve until interrupted."""
    plan = plan_demo(port, data_dir)
    print(f"Data folder (survives restarts): {plan.settings.data_dir}")
    print(f"Sandbox EHR patient list:        {plan.sandbox.base_url}/ehr/")
    print(f"Open this chart to launch the app: {plan.chart_url}")
    print("Press Ctrl+C to stop.")
    prepare_process([plan.organization.rule_set])
    if open_browser:
        webbrowser.open(plan.chart_url)
    asyncio.run(_serve_both(plan, "127.0.0.1"))
