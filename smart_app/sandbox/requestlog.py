"""A log of every HTTP request the sandbox answers, for tests and benchmarks to inspect.

`GET /_sandbox/requests` returns it and `DELETE /_sandbox/requests` clears it; like every
`/_sandbox` endpoint these are unauthenticated on purpose, since this is a local test EHR.
Requests to the log itself are not recorded, so reading it does not change it.

Each record has method, path (with query), status (0 when the connection was dropped without
an answer), duration_ms, time, client_id and fault (the injected fault's kind, or None; see
faults.py); requests hit by an after-commit fault also carry committed_status.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_ENTRIES = 20000
LOG_PATH = "/_sandbox/requests"


class RequestLog:
    """A bounded, thread-safe list of request records."""

    def __init__(self) -> None:
        self._entries: deque[dict] = deque(maxlen=MAX_ENTRIES)
        self._lock = threading.Lock()

    def add(self, entry: dict) -> None:
        """Append one record."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict]:
        """A copy of every record, oldest first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._entries.clear()


class RequestLogMiddleware:
    """Records method, path with query, status, duration, time and the authorized client."""

    def __init__(self, app: ASGIApp, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == LOG_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        when = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        status = 500
        # Routes put the authenticated client here; scope["state"] is what request.state uses.
        state = scope.setdefault("state", {})

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            entry = {
                "method": scope["method"],
                "path": scope["path"] + (f"?{query}" if query else ""),
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "time": when,
                "client_id": state.get("client_id"),
                "fault": state.get("fault"),
            }
            if "committed_status" in state:
                entry["committed_status"] = state["committed_status"]
            self.log.add(entry)
