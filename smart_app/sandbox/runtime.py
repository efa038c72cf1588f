"""The objects one running sandbox shares between its routes."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from smart_app.sandbox.authstate import AuthState
from smart_app.sandbox.config import SandboxConfig
from smart_app.sandbox.db import Database
from smart_app.sandbox.faults import FaultStore
from smart_app.sandbox.jose import SigningKey
from smart_app.sandbox.requestlog import RequestLog
from smart_app.sandbox.service import FhirService
from smart_app.sandbox.store import FhirStore


@dataclass
class Sandbox:
    """Configuration, storage, authorization state, signing key, request log and faults."""

    config: SandboxConfig
    db: Database
    store: FhirStore
    service: FhirService
    auth: AuthState
    key: SigningKey
    log: RequestLog
    faults: FaultStore


def sandbox_of(request: Request) -> Sandbox:
    """The sandbox serving this request."""
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox
