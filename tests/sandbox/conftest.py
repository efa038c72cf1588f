"""A sandbox EHR served over real HTTP for the whole session, with registered test clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from smart_app.sandbox import SandboxClient, SandboxConfig, create_app
from tests.live_server import serve
from tests.sandbox.helpers import (
    APP_LAUNCH_URL,
    REDIRECT_URI,
    generate_key,
    public_jwks,
)

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Keys:
    """Private keys the confidential test clients sign assertions with."""

    rsa: object
    ec: object
    other_rsa: object


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(generate_key("RSA", "rs-1"), generate_key("EC", "es-1"),
                generate_key("RSA", "rs-unregistered"))


@pytest.fixture(scope="session")
def jwks_url(keys: Keys) -> Iterator[str]:
    """A tiny server publishing the EC client's JWKS, so jwks_url fetching is exercised."""
    async def jwks(request):
        return JSONResponse(public_jwks(keys.ec))

    with serve(lambda base: Starlette(routes=[Route("/jwks.json", jwks)])) as base:
        yield f"{base}/jwks.json"


def make_clients(keys: Keys, jwks_url: str) -> list[SandboxClient]:
    """The clients every test sandbox registers."""
    return [
        SandboxClient("public-app", [REDIRECT_URI]),
        SandboxClient("confidential-rs", [REDIRECT_URI], "private_key_jwt",
                      jwks=public_jwks(keys.rsa)),
        SandboxClient("confidential-es", [REDIRECT_URI], "private_key_jwt", jwks_url=jwks_url),
        SandboxClient("backend", [], "private_key_jwt", jwks=public_jwks(keys.rsa),
                      scope="system/*.rs system/Claim.c"),
        SandboxClient("limited-app", [REDIRECT_URI],
                      scope="launch openid fhirUser patient/Patient.rs"),
    ]


@contextmanager
def sandbox_server(keys: Keys, jwks_url: str, **options: object) -> Iterator[str]:
    """Serve a fresh sandbox (test fixtures, test clients) and yield its base URL."""
    def factory(base_url: str):
        settings = {"fixtures_dir": FIXTURES, "clients": make_clients(keys, jwks_url),
                    "app_launch_url": APP_LAUNCH_URL, **options}
        return create_app(SandboxConfig(base_url=base_url, **settings))

    with serve(factory) as url:
        yield url


@pytest.fixture(scope="session")
def base(keys: Keys, jwks_url: str) -> Iterator[str]:
    """Base URL of the session's sandbox EHR (in-memory, test fixtures); tests may write."""
    with sandbox_server(keys, jwks_url) as url:
        yield url


@pytest.fixture
def http(base: str) -> Iterator[httpx.Client]:
    """An HTTP client for the sandbox that does not follow redirects."""
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as client:
        yield client
