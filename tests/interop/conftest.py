"""Start Medplum's FHIR router (tests/interop/medplum/server.mjs, on Node 22) for the interop tests.

Installed by `make interop` (npm ci in tests/interop/medplum). Without it the tests are skipped
locally and fail under CI=true, so CI never passes without the independent engine.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smart_app.paths import data_path

MEDPLUM_DIR = Path(__file__).resolve().parent / "medplum"
SERVER = MEDPLUM_DIR / "server.mjs"
NODE = MEDPLUM_DIR / "node_modules" / "node" / "bin" / "node"
ROUTER = MEDPLUM_DIR / "node_modules" / "@medplum" / "fhir-router" / "package.json"
START_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class Medplum:
    """A running Medplum FHIR router: `fhir` is its FHIR base URL."""

    base_url: str

    @property
    def fhir(self) -> str:
        return f"{self.base_url}/fhir"

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of the FHIR requests since the last `clear_requests` (metadata excluded)."""
        log = httpx.get(f"{self.base_url}/_interop/requests", timeout=10).json()
        return [(r["method"], r["path"]) for r in log]

    def posted_bundles(self) -> list[dict]:
        """The batch and transaction Bundles posted since the last `clear_requests`, as they were sent."""
        log = httpx.get(f"{self.base_url}/_interop/requests", timeout=10).json()
        return [r["bundle"] for r in log if "bundle" in r]

    def validate(self, resource: dict) -> list[dict]:
        """Medplum's validator on `resource` (structure and FHIRPath invariants): the error issues, none if valid."""
        answer = httpx.post(f"{self.base_url}/_interop/validate", json=resource, timeout=30)
        answer.raise_for_status()
        return answer.json()["issue"]

    def clear_requests(self) -> None:
        httpx.delete(f"{self.base_url}/_interop/requests", timeout=10).raise_for_status()


def _missing() -> str | None:
    """Why Medplum cannot run here, or None."""
    if not NODE.is_file() or not os.access(NODE, os.X_OK):
        return f"the Node 22 binary {NODE} is missing"
    if not ROUTER.is_file():
        return "@medplum/fhir-router is not installed in tests/interop/medplum/node_modules"
    return None


def _unavailable(reason: str) -> None:
    message = (f"Medplum FHIR router unavailable: {reason}. Install it with `make interop` "
               "(npm ci --no-audit --no-fund in tests/interop/medplum).")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _wait_for_port(process: subprocess.Popen[str], stderr: Path) -> int:
    """The port from the server's "listening <port>" line; fail with its stderr if it never comes."""
    found: list[str] = []

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("listening "):
                found.append(line.split()[1])
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(START_TIMEOUT)
    if not found:
        process.kill()
        process.wait(10)
        output = stderr.read_text(encoding="utf-8", errors="replace")[-4000:]
        pytest.fail(f"the Medplum server did not start within {START_TIMEOUT:.0f} s "
                    f"(exit code {process.returncode}):\n{output}", pytrace=False)
    return int(found[0])


@pytest.fixture(scope="session")
def medplum() -> Iterator[Medplum]:
    """Medplum's in-memory FHIR server on a free loopback port, seeded from fixtures/."""
    reason = _missing()
    if reason:
        _unavailable(reason)
    with tempfile.TemporaryDirectory(prefix="medplum-") as tmp:
        stderr_path = Path(tmp) / "stderr.log"
        with stderr_path.open("w", encoding="utf-8") as stderr:
            # Port 0: the server binds a free port itself and prints it, so no port can be taken meanwhile.
            process = subprocess.Popen(
                [str(NODE), str(SERVER), "--port", "0", "--fixtures", str(data_path("fixtures"))],
                cwd=MEDPLUM_DIR, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True)
            try:
                started = time.monotonic()
                port = _wait_for_port(process, stderr_path)
                print(f"Medplum started in {time.monotonic() - started:.1f} s")
                yield Medplum(f"http://127.0.0.1:{port}")
            finally:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
                if process.stdout:
                    process.stdout.close()
