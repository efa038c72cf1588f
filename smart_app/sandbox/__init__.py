"""A local SMART App Launch 2.x EHR (authorization server + FHIR R4 store) for the demo and tests.

It is a separate Starlette app on its own port, spoken to over real HTTP, never a mock inside the
app. `SandboxConfig.profile` picks an EHR profile (`open`, `strict`, `epic-like`, `oracle-like`; see
profiles.py) whose CapabilityStatement it publishes and enforces. The `/_sandbox/*` endpoints
(launches, request log, fault injection in faults.py, resource counts) are deliberately
unauthenticated test hooks: this is a local test EHR.
"""

from smart_app.sandbox.app import create_app
from smart_app.sandbox.config import SandboxClient, SandboxConfig

__all__ = ["SandboxClient", "SandboxConfig", "create_app"]
