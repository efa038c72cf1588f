"""Fault injection: make chosen requests fail the ways real EHRs and networks fail.

Write-back must survive a server that errors, stalls, drops the connection, or writes the
resource and then fails to say so. A test arms a fault with

    POST /_sandbox/faults  {"match": "POST /fhir/Claim", "kind": "500", "count": 1,
                            "delay_s": 5}

and the next `count` requests whose "METHOD path" (path without query) starts with `match`
fail that way (`"POST /fhir"` covers every FHIR write; the match is a plain, case-sensitive
prefix). `GET /_sandbox/faults` lists the armed faults with their remaining counts and
`DELETE /_sandbox/faults` disarms them all. Like every `/_sandbox` endpoint these are
unauthenticated test hooks, and `/_sandbox/*` requests themselves are never faulted. Faults
live in the sandbox database, so every request of the sandbox sees the same armed faults.

Kinds, and how each is produced:
- `500`: nothing is done; the answer is 500 with an OperationOutcome.
- `503`: the same with status 503 and `Retry-After: 1`.
- `429`: nothing is done; the answer is 429 (too many requests) with `Retry-After` set to
  `delay_s` whole seconds (default 5), as an EHR throttling an app answers.
- `timeout`: nothing is done; the sandbox waits `delay_s` seconds (default 5), or until the
  client hangs up, then answers 504. The client is expected to time out first.
- `drop`: nothing is done and the connection is closed without any HTTP response: the fault
  sends `http.response.start` with the impossible status 0. uvicorn marks the response started
  before it serialises the status line, fails on the unknown status, and so closes the
  connection without writing a byte ("ASGI callable returned without completing response" in
  its log); an HTTP client sees a transport error (httpx: `RemoteProtocolError`, "Server
  disconnected without sending a response").
- `500-after-commit`: the request is performed fully (the resource IS created), its answer is
  discarded, and the client gets a 500: the server wrote it but the client never learned.
- `drop-after-commit`: performed fully, then the connection drops as for `drop`.

Every faulted request is in the request log with the status the client got (0 for a drop) and
`fault` naming the kind; after-commit kinds also record `committed_status`, the status the
discarded answer had.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import asdict, dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smart_app.sandbox.db import Database
from smart_app.sandbox.outcome import fhir_response, operation_outcome

KINDS = ("500", "503", "429", "timeout", "drop", "500-after-commit", "drop-after-commit")
DEFAULT_DELAY_S = 5.0
MAX_DELAY_S = 300.0
HOOK_PREFIX = "/_sandbox/"
DROP_STATUS = 0  # what the request log records for a dropped connection


@dataclass(frozen=True)
class Fault:
    """One armed fault and how many more requests it will hit."""

    id: int
    match: str
    kind: str
    remaining: int
    delay_s: float


class FaultStore:
    """Armed faults in the sandbox database, taken atomically by the requests they hit."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def arm(self, match: str, kind: str, count: int = 1,
            delay_s: float = DEFAULT_DELAY_S) -> Fault:
        """Arm a fault for the next `count` requests matching `match`."""
        cur = self.db.execute(
            "INSERT INTO faults (match, kind, remaining, delay_s) VALUES (?, ?, ?, ?)",
            (match, kind, count, delay_s),
        )
        return Fault(int(cur.lastrowid or 0), match, kind, count, delay_s)

    def armed(self) -> list[Fault]:
        """Every fault still armed, oldest first."""
        rows = self.db.all("SELECT id, match, kind, remaining, delay_s FROM faults "
                           "WHERE remaining > 0 ORDER BY id")
        return [Fault(*row) for row in rows]

    def clear(self) -> None:
        """Disarm every fault."""
        self.db.execute("DELETE FROM faults")

    def take(self, request_line: str) -> Fault | None:
        """The oldest armed fault matching "METHOD path", its count decremented; or None."""
        if self.db.one("SELECT 1 FROM faults LIMIT 1") is None:
            return None  # the common case, without taking the write lock
        with self.db.transaction():
            row = self.db.one(
                "SELECT id, match, kind, remaining, delay_s FROM faults WHERE remaining > 0 "
                "AND substr(?, 1, length(match)) = match ORDER BY id LIMIT 1",
                (request_line,),
            )
            if row is None:
                return None
            fault = Fault(*row)
            if fault.remaining <= 1:
                self.db.execute("DELETE FROM faults WHERE id=?", (fault.id,))
            else:
                self.db.execute("UPDATE faults SET remaining=remaining-1 WHERE id=?",
                                (fault.id,))
        return Fault(fault.id, fault.match, fault.kind, fault.remaining - 1, fault.delay_s)


def parse_fault(body: object) -> tuple[str, str, int, float]:
    """(match, kind, count, delay_s) from a POST body; ValueError describing what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(body) - {"match", "kind", "count", "delay_s"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    match = body.get("match")
    if not isinstance(match, str) or not match.strip():
        raise ValueError('match must be a non-empty "METHOD /path" prefix, e.g. "POST /fhir"')
    kind = body.get("kind")
    kind = str(kind) if isinstance(kind, int) and not isinstance(kind, bool) else kind
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError("count must be a positive integer")
    delay = body.get("delay_s", DEFAULT_DELAY_S)
    if (not isinstance(delay, int | float) or isinstance(delay, bool) or not math.isfinite(delay)
            or not 0 <= delay <= MAX_DELAY_S):
        raise ValueError(f"delay_s must be a number of seconds from 0 to {MAX_DELAY_S:g}")
    return match, kind, count, float(delay)


def _faults(request: Request) -> FaultStore:
    faults: FaultStore = request.app.state.sandbox.faults
    return faults


async def arm_fault(request: Request) -> Response:
    """POST /_sandbox/faults: arm a fault; 201 with it, or 400 with {"error": ...}."""
    try:
        match, kind, count, delay = parse_fault(await request.json())
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(asdict(_faults(request).arm(match, kind, count, delay)), status_code=201)


async def list_faults(request: Request) -> Response:
    """GET /_sandbox/faults: the armed faults with their remaining counts."""
    return JSONResponse([asdict(f) for f in _faults(request).armed()])


async def clear_faults(request: Request) -> Response:
    """DELETE /_sandbox/faults: disarm every fault."""
    _faults(request).clear()
    return Response(status_code=204)


routes = [
    Route("/_sandbox/faults", arm_fault, methods=["POST"]),
    Route("/_sandbox/faults", list_faults, methods=["GET"]),
    Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
]


async def _drain(receive: Receive) -> bool:
    """Read (and discard) the request body; True when the client hung up meanwhile."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return True
        if not message.get("more_body", False):
            return False


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _wait(receive: Receive, seconds: float) -> None:
    """Sleep `seconds`, ending early when the client disconnects."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_until_disconnect(receive), timeout=seconds)


async def _answer(scope: Scope, receive: Receive, send: Send, status: int, diagnostics: str,
                  code: str, headers: dict[str, str] | None = None) -> None:
    response = fhir_response(operation_outcome(f"injected fault: {diagnostics}", code),
                             status, headers)
    await response(scope, receive, send)


async def _drop(send: Send) -> None:
    """Close the connection without an HTTP response (see the module docstring)."""
    with contextlib.suppress(Exception):
        await send({"type": "http.response.start", "status": DROP_STATUS, "headers": []})
    # Returning with the response started but not completed makes the server close the
    # connection; should a server have written the impossible status line, it closes too.


class FaultMiddleware:
    """Applies armed faults; sits inside the request log so the log sees what clients got."""

    def __init__(self, app: ASGIApp, faults: FaultStore) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(HOOK_PREFIX):
            await self.app(scope, receive, send)
            return
        fault = self.faults.take(f"{scope['method']} {scope['path']}")
        if fault is None:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["fault"] = fault.kind
        if fault.kind.endswith("-after-commit"):
            state["committed_status"] = await self._perform(scope, receive)
        elif await _drain(receive):
            return  # the client is gone already; nothing to answer
        if fault.kind in ("500", "500-after-commit"):
            await _answer(scope, receive, send, 500, f"{fault.kind} on {fault.match!r}",
                          "exception")
        elif fault.kind == "503":
            await _answer(scope, receive, send, 503, f"503 on {fault.match!r}", "transient",
                          {"Retry-After": "1"})
        elif fault.kind == "429":
            await _answer(scope, receive, send, 429, f"429 on {fault.match!r}", "throttled",
                          {"Retry-After": str(math.ceil(fault.delay_s))})
        elif fault.kind == "timeout":
            await _wait(receive, fault.delay_s)
            await _answer(scope, receive, send, 504,
                          f"timeout after {fault.delay_s:g} s on {fault.match!r}", "timeout")
        else:  # drop, drop-after-commit
            await _drop(send)

    async def _perform(self, scope: Scope, receive: Receive) -> int | None:
        """Run the request to completion, discarding its answer; the status it had."""
        status: int | None = None

        async def discard(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, discard)
        return status
