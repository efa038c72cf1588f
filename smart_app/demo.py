"""`smart-app demo`: the sandbox EHR and the app side by side on SQLite, for a first look.

The demo brings its own organization (the packaged `launch/sandbox.toml`, pointed at the sandbox it runs) and
ignores `SMART_APP_LAUNCH_DIR`, which names the organizations `serve` installs: after the install guide's
exports the demo still starts, and says so. It prints the chart's address, and opens the browser, only once both
servers answer: loading the rule sets takes seconds, and a first page of "connection refused" helps nobody.
"""

from __future__ import annotations

import asyncio
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import Engine

from smart_app.crypto import TokenBox
from smart_app.db import make_engine, session_factory, transaction, upgrade
from smart_app.errors import ConfigError
from smart_app.launch.organizations import Organization, load_organization_file, with_overrides
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


def sandbox_org(sandbox_base: str) -> Organization:
    """The demo organization from the packaged `launch/sandbox.toml` (never SMART_APP_LAUNCH_DIR's), pointed at the
    running sandbox."""
    path = data_path("launch") / f"{DEMO_ORG}.toml"
    if not path.is_file():
        raise ConfigError(f"The demo's organization file {path} is missing.",
                          "Reinstall the app (or restore launch/sandbox.toml in a checkout).")
    org = load_organization_file(path)
    return with_overrides(org, issuer=f"{sandbox_base}/fhir", frame_origins=(sandbox_base,),
                          chart_link=f"{sandbox_base}/ehr/chart/{{patient_id}}")


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
    org = sandbox_org(sandbox_base)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    purge_expired(session_factory(engine))
    sandbox = SandboxConfig(base_url=sandbox_base, fixtures_dir=data_path("fixtures"),
                            database=str(settings.data_dir / "sandbox.db"),
                            clients=[sandbox_client(engine, settings, org)],
                            app_launch_url=settings.launch_url)
    return DemoPlan(settings=settings, sandbox=sandbox, organization=org, engine=engine,
                    app_port=port, sandbox_port=port + 1)


# How long the servers may take to answer after they start (the app loads rule sets and code tables first).
READY_TIMEOUT = 120.0


async def _wait_until_answering(plan: DemoPlan, tasks: list[asyncio.Task[None]]) -> None:
    """Return once the app and the sandbox both answer HTTP; ConfigError if either stops or never answers."""
    probes = {"app": f"http://127.0.0.1:{plan.app_port}/healthz",
              "sandbox EHR": f"http://127.0.0.1:{plan.sandbox_port}/.well-known/smart-configuration"}
    ports = {"app": plan.app_port, "sandbox EHR": plan.sandbox_port}
    waiting = set(probes)
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=2.0) as http:
        while waiting:
            for name, task in zip(("sandbox EHR", "app"), tasks, strict=True):
                if task.done():
                    raise ConfigError(f"The demo's {name} stopped before it answered (port {ports[name]} in use?).",
                                      f"Stop whatever listens on ports {plan.app_port} and {plan.sandbox_port}, or "
                                      "run `smart-app demo --port <another port>`.")
            for name in sorted(waiting):
                try:
                    answered = (await http.get(probes[name])).status_code < 500
                except httpx.HTTPError:
                    answered = False
                if answered:
                    waiting.discard(name)
            if waiting and asyncio.get_running_loop().time() > deadline:
                raise ConfigError(f"The demo's {' and '.join(sorted(waiting))} did not answer within "
                                  f"{READY_TIMEOUT:.0f} s.", "Stop the demo (Ctrl+C) and start it again.")
            if waiting:
                await asyncio.sleep(0.1)


class _ServerStopped(Exception):
    """A demo server stopped while starting."""


async def _serve(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as exc:
        # uvicorn exits the process when it cannot start (a port in use); the demo says which server instead.
        raise _ServerStopped(str(exc.code)) from exc


async def _serve_both(plan: DemoPlan, bind: str, when_ready: Callable[[], None]) -> None:
    servers = [
        uvicorn.Server(uvicorn.Config(create_sandbox(plan.sandbox), host=bind,
                                      port=plan.sandbox_port, log_level="warning")),
        uvicorn.Server(uvicorn.Config(create_app(plan.settings, [plan.organization], plan.engine),
                                      host=bind, port=plan.app_port, log_level="warning")),
    ]
    # After uvicorn has set up its loggers, which keeps a logger's filters.
    install_log_redaction()
    tasks = [asyncio.create_task(_serve(server)) for server in servers]
    try:
        await _wait_until_answering(plan, tasks)
    except BaseException:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    # Opening a browser starts a process: off the event loop.
    await asyncio.to_thread(when_ready)
    await asyncio.gather(*tasks)


def run_demo(port: int, open_browser: bool, data_dir: Path | None = None) -> None:
    """Start both servers; once both answer, print where to click (and open it); serve until interrupted."""
    plan = plan_demo(port, data_dir)
    print(f"Data folder (survives restarts): {plan.settings.data_dir}")
    if plan.settings.launch_dir:
        print(f"SMART_APP_LAUNCH_DIR ({plan.settings.launch_dir}) is for `smart-app serve`; the demo ignores it and "
              "runs its own organization (launch/sandbox.toml) against its own sandbox EHR.")
    print("Starting the sandbox EHR and the app (loading the billing rules takes a few seconds)...", flush=True)
    prepare_process([plan.organization.rule_set])

    def ready() -> None:
        print(f"Sandbox EHR patient list:        {plan.sandbox.base_url}/ehr/")
        print(f"Open this chart to launch the app: {plan.chart_url}")
        print("Press Ctrl+C to stop.", flush=True)
        if open_browser:
            webbrowser.open(plan.chart_url)

    asyncio.run(_serve_both(plan, "127.0.0.1", ready))
