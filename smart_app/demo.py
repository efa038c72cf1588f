"""`smart-app demo`: the sandbox EHR and the app side by side on SQLite, for a first look."""

from __future__ import annotations

import asyncio
import webbrowser
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from smart_app.db import make_engine, upgrade
from smart_app.launch.organizations import Organization, load_directory, with_overrides
from smart_app.paths import data_path
from smart_app.sandbox import SandboxClient, SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from smart_app.settings import Settings, load_settings
from smart_app.web.app import create_app

DEMO_ORG = "sandbox"
FIRST_PATIENT = "ccm-two-chronic"


@dataclass(frozen=True)
class DemoPlan:
    """Where each server of the demo listens and what it is configured with."""

    settings: Settings
    sandbox: SandboxConfig
    organizations: list[Organization]
    app_port: int
    sandbox_port: int

    @property
    def chart_url(self) -> str:
        """The sandbox chart of the first scenario patient, with the app inside."""
        return f"{self.sandbox.base_url}/ehr/chart/{FIRST_PATIENT}"


def plan_demo(port: int, data_dir: Path | None = None, host: str = "localhost") -> DemoPlan:
    """Configure the app on `port` and the sandbox EHR on `port + 1`, sharing one data folder."""
    settings = load_settings(base_url=f"http://{host}:{port}", data_dir=data_dir)
    sandbox_base = f"http://{host}:{port + 1}"
    orgs = []
    for org in load_directory(settings.launch_dir):
        if org.id == DEMO_ORG:
            org = with_overrides(org, issuer=f"{sandbox_base}/fhir", frame_origins=(sandbox_base,))
        orgs.append(org)
    demo_org = next((o for o in orgs if o.id == DEMO_ORG), None)
    clients = [SandboxClient(client_id=demo_org.client_id, redirect_uris=[settings.redirect_uri])
               ] if demo_org else []
    sandbox = SandboxConfig(base_url=sandbox_base, fixtures_dir=data_path("fixtures"),
                            database=str(settings.data_dir / "sandbox.db"), clients=clients,
                            app_launch_url=settings.launch_url)
    return DemoPlan(settings=settings, sandbox=sandbox, organizations=orgs, app_port=port,
                    sandbox_port=port + 1)


async def _serve_both(plan: DemoPlan, bind: str) -> None:
    engine = make_engine(plan.settings.database_url)
    upgrade(engine)
    servers = [
        uvicorn.Server(uvicorn.Config(create_sandbox(plan.sandbox), host=bind,
                                      port=plan.sandbox_port, log_level="warning")),
        uvicorn.Server(uvicorn.Config(create_app(plan.settings, plan.organizations, engine),
                                      host=bind, port=plan.app_port, log_level="warning")),
    ]
    await asyncio.gather(*(server.serve() for server in servers))


def run_demo(port: int, open_browser: bool, data_dir: Path | None = None) -> None:
    """Start both servers, print where to click, and serve until interrupted."""
    plan = plan_demo(port, data_dir)
    print(f"Data folder (survives restarts): {plan.settings.data_dir}")
    print(f"Sandbox EHR patient list:        {plan.sandbox.base_url}/ehr/")
    print(f"Open this chart to launch the app: {plan.chart_url}")
    print("Press Ctrl+C to stop.")
    if open_browser:
        webbrowser.open(plan.chart_url)
    asyncio.run(_serve_both(plan, "127.0.0.1"))
