"""`smart-app demo` as a newcomer runs it: after the install guide's exports, and the first page it opens works.

Issue 15: with `SMART_APP_LAUNCH_DIR` exported as docs/install.md shows, the demo stopped ("No organization file
with id 'sandbox' was found"); and it printed the chart URL and opened the browser seconds before the servers
listened, so the first page was "connection refused". The browser here is a script (Python's `webbrowser` runs the
command in `BROWSER`) that fetches the page the moment it is opened and writes down what it got.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CHART_LINE = "Open this chart to launch the app: "


def free_port_pair() -> int:
    """A port p with p + 1 free too (the demo's app and sandbox)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two adjacent free ports")


@contextmanager
def demo(tmp_path: Path, port: int, *args: str,
         env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`smart-app demo` running until the block ends; (the process, the lines it printed up to the chart URL)."""
    process = subprocess.Popen([sys.executable, "-m", "smart_app.cli", "demo", "--port", str(port),
                                "--data-dir", str(tmp_path / "demo"), *args],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith(CHART_LINE):
                break
        yield process, lines
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout:
            process.stdout.close()


@contextmanager
def demo_on_free_ports(tmp_path: Path, *args: str,
                       env: dict[str, str]) -> Iterator[tuple[int, subprocess.Popen[str], list[str]]]:
    """`demo` on a pair of free ports; tried again on others when another process took one meanwhile (the demo
    binds the ports itself, so a parallel test can take one between the check and the bind)."""
    for _ in range(3):
        port = free_port_pair()
        with demo(tmp_path, port, *args, env=env) as (process, lines):
            if any("in use?)" in line for line in lines) and not (lines and lines[-1].startswith(CHART_LINE)):
                continue
            yield port, process, lines
            return
    raise AssertionError("no free pair of ports in three tries")


def install_guide_environment(tmp_path: Path) -> dict[str, str]:
    """The exports of docs/install.md section 3: a data folder, a base URL and an (empty) launch folder."""
    launch_dir = tmp_path / "install" / "launch"
    launch_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_APP_")}
    return {**env, "SMART_APP_DATA_DIR": str(tmp_path / "install"), "SMART_APP_BASE_URL": "http://localhost:8000",
            "SMART_APP_LAUNCH_DIR": str(launch_dir), "SMART_APP_SECRET_KEY": "s" * 48}


def test_the_demo_runs_after_the_install_guides_exports_and_opens_a_page_that_answers(tmp_path: Path) -> None:
    seen = tmp_path / "browser.log"
    browser = tmp_path / "browser.py"
    # The "browser" fetches the page at once and writes its status: it must not be connection refused.
    browser.write_text("import sys, httpx\n"
                       "try:\n"
                       "    status = str(httpx.get(sys.argv[1], timeout=10).status_code)\n"
                       "except httpx.HTTPError as exc:\n"
                       "    status = type(exc).__name__\n"
                       f"open({str(seen)!r}, 'w').write(sys.argv[1] + ' ' + status)\n")
    env = {**install_guide_environment(tmp_path), "BROWSER": f"{sys.executable} {browser} %s"}
    with demo_on_free_ports(tmp_path, env=env) as (port, process, lines):
        assert lines and lines[-1].startswith(CHART_LINE), "\n".join(lines)
        chart = lines[-1].removeprefix(CHART_LINE)
        assert chart == f"http://localhost:{port + 1}/ehr/chart/ccm-two-chronic"
        # Printed only once both servers answer: the address works the moment it is shown.
        assert httpx.get(chart, timeout=10).status_code == 200
        assert httpx.get(f"http://localhost:{port}/healthz", timeout=10).json() == {"status": "ok"}
        deadline = time.monotonic() + 30
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.poll() is None, "the demo keeps serving"
    assert seen.read_text() == f"{chart} 200", "the browser was opened on a page that answered"
    text = "\n".join(lines)
    assert "No organization file" not in text
    assert f"SMART_APP_LAUNCH_DIR ({tmp_path / 'install' / 'launch'}) is for `smart-app serve`; the demo ignores it" \
        in text
    assert lines.index(next(line for line in lines if line.startswith("Sandbox EHR patient list:"))) > \
        lines.index(next(line for line in lines if line.startswith("Starting the sandbox EHR and the app")))


def test_the_demo_says_when_its_ports_are_taken(tmp_path: Path) -> None:
    port = free_port_pair()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + 1))
        taken.listen(1)
        env = install_guide_environment(tmp_path)
        ran = subprocess.run([sys.executable, "-m", "smart_app.cli", "demo", "--port", str(port), "--no-browser",
                              "--data-dir", str(tmp_path / "demo")], env=env, capture_output=True, text=True,
                             timeout=120)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert CHART_LINE not in ran.stdout
    assert f"The demo's sandbox EHR stopped before it answered (port {port + 1} in use?)" in ran.stderr
    assert "run `smart-app demo --port <another port>`" in ran.stderr
