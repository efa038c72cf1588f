"""A deployment as `docs/operations.md` runs it, on loopback: the sandbox EHR (in this process), and
`smart-app serve --workers 2` (and `smart-app worker`) as real processes on one PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from smart_app.demo import sandbox_client, sandbox_org
from smart_app.paths import data_path
from smart_app.sandbox import SandboxConfig
from smart_app.sandbox import create_app as create_sandbox
from smart_app.settings import load_settings
from tests.databases import engine_for
from tests.live_server import reserve_socket, serve_on, url_of
from tests.stack import TEST_SECRET, Stack


@dataclass(frozen=True)
class Deployment:
    """The running stack, the environment its processes share, and the folder their logs go to."""

    stack: Stack
    env: dict[str, str]
    folder: Path

    def command(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `smart-app ARGV...` as another process on the deployment's database."""
        return subprocess.run([sys.executable, "-m", "smart_app.cli", *argv], env=self.env, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def start(self, name: str, *argv: str) -> subprocess.Popen[str]:
        """Start a long-running `smart-app ARGV...`, its output in `folder/NAME.log`."""
        log = (self.folder / f"{name}.log").open("w")
        return subprocess.Popen([sys.executable, "-m", "smart_app.cli", *argv], env=self.env, text=True,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text()


OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def documented_commands() -> list[list[str]]:
    """The commands of docs/operations.md's "On one host" block, each split into its words."""
    section = OPERATIONS.read_text().split("## On one host", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def documented(program: str, action: str, port: int) -> list[str]:
    """The documented `PROGRAM ACTION ...` command, with the test's port for the documented 8000."""
    found = next(words for words in documented_commands() if words[:2] == [program, action]
                 or (program == "curl" and words[0] == "curl"))
    return [word.replace("8000", str(port)) for word in found]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def organization_file(sandbox_url: str) -> str:
    """The demo's organization file pointed at the running sandbox, as an operator would install it."""
    text = (data_path("launch") / "sandbox.toml").read_text()
    text = re.sub(r'(?m)^issuer = ".*"$', f'issuer = "{sandbox_url}/fhir"', text)
    return re.sub(r'(?m)^frame_origins = \[.*\]$', f'frame_origins = ["{sandbox_url}"]', text)


def wait_ready(url: str, process: subprocess.Popen[str], seconds: float = 90) -> None:
    """Until `/readyz` answers 200, or fail with what the process said."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready in {seconds} s")


def stop(process: subprocess.Popen[str], seconds: float = 60) -> int:
    """SIGTERM, as systemd and container runtimes stop a service; its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


@contextlib.contextmanager
def deployment(database_url: str, folder: Path) -> Iterator[tuple[Deployment, subprocess.Popen[str]]]:
    """The sandbox EHR and `smart-app serve --workers 2` on `database_url`; the server stopped by SIGTERM after."""
    port, sandbox_sock = free_port(), reserve_socket()
    folder.mkdir(parents=True, exist_ok=True)
    app_url, sandbox_url = f"http://127.0.0.1:{port}", url_of(sandbox_sock)
    settings = load_settings(env={}, base_url=app_url, database_url=database_url, data_dir=folder,
                             secret_key=TEST_SECRET)
    org = sandbox_org(sandbox_url)
    launch_dir = folder / "launch"
    launch_dir.mkdir(exist_ok=True)
    (launch_dir / "sandbox.toml").write_text(organization_file(sandbox_url))
    env = {**os.environ, "SMART_APP_DATABASE_URL": database_url, "SMART_APP_SECRET_KEY": TEST_SECRET,
           "SMART_APP_BASE_URL": app_url, "SMART_APP_DATA_DIR": str(folder), "SMART_APP_LAUNCH_DIR": str(launch_dir),
           "SMART_APP_LOG_FORMAT": "json"}
    with engine_for(database_url) as engine:
        client = sandbox_client(engine, settings, org)
    sandbox = create_sandbox(SandboxConfig(base_url=sandbox_url, fixtures_dir=data_path("fixtures"),
                                           clients=[client], app_launch_url=settings.launch_url))
    with serve_on(sandbox_sock, sandbox):
        running = Deployment(Stack(app_url=app_url, sandbox_url=sandbox_url, settings=settings, organization=org),
                             env, folder)
        # The serve command exactly as docs/operations.md gives it, on a free port.
        server = running.start("serve", *documented("smart-app", "serve", port)[1:])
        try:
            wait_ready(app_url, server)
            yield running, server
        except BaseException:
            stop(server)
            raise
        # SIGTERM: uvicorn lets requests in flight finish, stops the workers, and exits 0.
        assert stop(server) == 0, running.log("serve")[-3000:]
