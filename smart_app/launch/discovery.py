"""SMART discovery: `.well-known/smart-configuration`, falling back to the CapabilityStatement."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from smart_app.errors import EhrError

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


@dataclass(frozen=True)
class SmartConfiguration:
    """What an EHR's authorization server offers."""

    authorization_endpoint: str
    token_endpoint: str
    issuer: str = ""
    jwks_uri: str = ""
    capabilities: tuple[str, ...] = ()
    code_challenge_methods: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ()
    token_auth_methods: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()
    source: str = "smart-configuration"
    raw: dict = field(default_factory=dict, compare=False)


def _tuple(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def parse_smart_configuration(doc: object) -> SmartConfiguration:
    """Read a `.well-known/smart-configuration` document; EhrError when it lacks the endpoints."""
    if not isinstance(doc, dict):
        raise EhrError("The EHR's smart-configuration is not a JSON object.",
                       "Ask the EHR administrator to check the SMART discovery document.")
    auth, token = doc.get("authorization_endpoint"), doc.get("token_endpoint")
    if not isinstance(auth, str) or not isinstance(token, str):
        raise EhrError("The EHR's smart-configuration names no authorization or token endpoint.",
                       "Ask the EHR administrator to check the SMART discovery document.")
    return SmartConfiguration(
        authorization_endpoint=auth, token_endpoint=token, issuer=str(doc.get("issuer", "")),
        jwks_uri=str(doc.get("jwks_uri", "")), capabilities=_tuple(doc.get("capabilities")),
        code_challenge_methods=_tuple(doc.get("code_challenge_methods_supported")),
        grant_types=_tuple(doc.get("grant_types_supported")),
        token_auth_methods=_tuple(doc.get("token_endpoint_auth_methods_supported")),
        scopes_supported=_tuple(doc.get("scopes_supported")), raw=doc)


def parse_capability_statement(doc: object) -> SmartConfiguration:
    """Read the oauth-uris extension of a CapabilityStatement (the older discovery)."""
    if not isinstance(doc, dict) or doc.get("resourceType") != "CapabilityStatement":
        raise EhrError("The EHR's /metadata is not a CapabilityStatement.",
                       "Check that the issuer URL is the EHR's FHIR base.")
    uris: dict[str, str] = {}
    for rest in doc.get("rest") or []:
        for ext in ((rest.get("security") or {}).get("extension") or []):
            if ext.get("url") == OAUTH_URIS:
                for sub in ext.get("extension") or []:
                    if isinstance(sub.get("valueUri"), str):
                        uris[str(sub.get("url"))] = sub["valueUri"]
    if "authorize" not in uris or "token" not in uris:
        raise EhrError("The EHR publishes no OAuth endpoints (no smart-configuration and no "
                       "oauth-uris in its CapabilityStatement).",
                       "This EHR is not set up for SMART launches; contact its administrator.")
    # The CapabilityStatement cannot declare PKCE; SMART 2 servers must support S256.
    return SmartConfiguration(authorization_endpoint=uris["authorize"], token_endpoint=uris["token"],
                              code_challenge_methods=("S256",), source="CapabilityStatement",
                              raw=doc)


async def discover(http: httpx.AsyncClient, fhir_base: str) -> SmartConfiguration:
    """Discover the EHR's OAuth endpoints; EhrError when it is unreachable or publishes none."""
    base = fhir_base.rstrip("/")
    try:
        response = await http.get(f"{base}/.well-known/smart-configuration",
                                  headers={"Accept": "application/json"})
        if response.status_code == 200:
            try:
                return parse_smart_configuration(response.json())
            except (ValueError, EhrError):
                # A broken or partial document: the CapabilityStatement may still name the
                # endpoints, and if it does not, that error is the one reported.
                pass
        response = await http.get(f"{base}/metadata", headers={"Accept": "application/fhir+json"})
    except httpx.HTTPError as exc:
        raise EhrError(f"The EHR at {base} could not be reached ({type(exc).__name__}).",
                       "Check the network or try again in a minute; if it persists, tell the "
                       "EHR administrator.") from exc
    if response.status_code != 200:
        raise EhrError(f"The EHR at {base} answered discovery with HTTP {response.status_code}.",
                       "Try again in a minute; if it persists, tell the EHR administrator.")
    try:
        doc = response.json()
    except ValueError as exc:
        raise EhrError(f"The EHR at {base} answered discovery with something other than JSON.",
                       "Tell the EHR administrator; the app cannot launch from this EHR.") from exc
    return parse_capability_statement(doc)
