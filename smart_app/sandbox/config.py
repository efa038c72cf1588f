"""Configuration of one sandbox EHR instance and the clients registered with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from smart_app.sandbox.profiles import EhrProfile, get_profile

SANDBOX_NAME = "SMART Sandbox EHR"


@dataclass
class SandboxClient:
    """A registered SMART client (an app or a backend service)."""

    client_id: str
    redirect_uris: list[str]
    auth_method: str = "public"  # "public" | "private_key_jwt"
    jwks: dict | None = None  # registered public JWKS, or
    jwks_url: str | None = None  # fetched with httpx when verifying an assertion
    scope: str = ""  # space-separated scopes the client may be granted; "" = any


@dataclass
class SandboxConfig:
    """Everything `create_app` needs; paths are relative to `base_url`."""

    base_url: str
    fixtures_dir: Path
    database: str | None = None
    clients: list[SandboxClient] = field(default_factory=list)
    app_launch_url: str = ""
    open: bool = False
    shift_dates: bool = True
    latency_ms: int = 0
    profile: str = "open"  # EHR profile: "open", "strict", "epic-like" or "oracle-like" (see profiles.py)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.fixtures_dir = Path(self.fixtures_dir)
        get_profile(self.profile)  # fail fast on an unknown profile name

    @property
    def ehr_profile(self) -> EhrProfile:
        """The EHR profile whose capabilities the FHIR API publishes and enforces."""
        return get_profile(self.profile)

    @property
    def fhir_base(self) -> str:
        """The FHIR base URL, which is also the `aud` and the id_token issuer."""
        return self.base_url + "/fhir"

    @property
    def token_url(self) -> str:
        """The token endpoint, the only `aud` a client assertion may carry."""
        return self.base_url + "/auth/token"

    def client(self, client_id: str | None) -> SandboxClient | None:
        """The registered client with this id, or None."""
        for c in self.clients:
            if c.client_id == client_id:
                return c
        return None
