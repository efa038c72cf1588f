"""Shared pieces of the benchmarks: statistics, throwaway databases, server-side timing, git revision."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import create_engine, text

from smart_app.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("SMART_APP_BENCH_PG", os.environ.get(
    "SMART_APP_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
BACKENDS = ("sqlite", "postgresql")


# ---------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# ---------------------------------------------------------------- databases


def pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def postgres_problem() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        return f"{type(exc).__name__}: {exc}"


def _pg_admin(sql: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(sql))
    finally:
        engine.dispose()


@contextlib.contextmanager
def scratch_dir(prefix: str = "smart-app-bench-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(backend: str, folder: Path, label: str = "db") -> Iterator[str]:
    """The URL of an empty, migrated database of the backend; dropped (or deleted) afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'{label}-{uuid.uuid4().hex[:8]}.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    name = f"smart_app_bench_{label}_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        url = pg_url(name)
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------- server-side timing


class ServerTimer:
    """ASGI middleware: records (method, path, start, seconds) of every HTTP request it serves.

    The end is when the last body chunk was handed to the server (not when the coroutine returns, which
    other requests' work on the same event loop can delay). The app runs in a uvicorn thread of the
    benchmark process, so the records are read directly.
    """

    def __init__(self, app: object) -> None:
        self.app = app
        self.records: list[tuple[str, str, float, float]] = []

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[operator]
            return
        started = time.perf_counter()
        finished: list[float] = []

        async def timed_send(message) -> None:  # noqa: ANN001 - ASGI
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finished.append(time.perf_counter())

        try:
            await self.app(scope, receive, timed_send)  # type: ignore[operator]
        finally:
            end = finished[0] if finished else time.perf_counter()
            self.records.append((scope["method"], scope["path"], started, end - started))

    def clear(self) -> None:
        self.records.clear()


# ---------------------------------------------------------------- provenance


def git_revision() -> str:
    """The short commit of the checkout (with `+dirty` when the work tree has changes), or `unknown`."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
