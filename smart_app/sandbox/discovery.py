"""Discovery documents: SMART configuration, OpenID configuration, CapabilityStatement, style."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from smart_app.sandbox.config import SANDBOX_NAME, SandboxConfig
from smart_app.sandbox.outcome import fhir_response
from smart_app.sandbox.profiles import APP_TYPES, INTERACTIONS, OTHER_TYPES, EhrProfile
from smart_app.sandbox.runtime import sandbox_of
from smart_app.sandbox.search import TOKEN_PARAMS

CAPABILITIES = [
    "launch-ehr", "launch-standalone", "client-public", "client-confidential-asymmetric",
    "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
    "sso-openid-connect", "permission-patient", "permission-user", "permission-v2",
    "permission-v1", "permission-offline", "permission-online", "authorize-post",
    "context-passthrough-banner", "context-passthrough-style",
]
SCOPES = [
    "openid", "fhirUser", "launch", "launch/patient", "launch/encounter", "offline_access",
    "online_access", "patient/*.cruds", "user/*.cruds", "system/*.cruds", "patient/*.read",
    "patient/*.write", "user/*.read", "user/*.write", "system/*.read",
]
# Types listed in the open profile's CapabilityStatement even before any is stored.
KNOWN_TYPES = [*APP_TYPES, *OTHER_TYPES]
SEARCH_PARAMS = [
    ("_id", "token"), ("patient", "reference"), ("subject", "reference"),
    ("beneficiary", "reference"), ("encounter", "reference"), ("date", "date"),
    ("_lastUpdated", "date"), *((name, "token") for name in TOKEN_PARAMS),
]


def smart_configuration(config: SandboxConfig) -> dict:
    """The `.well-known/smart-configuration` document."""
    base = config.base_url
    return {
        "issuer": config.fhir_base,
        "jwks_uri": f"{base}/auth/jwks",
        "authorization_endpoint": f"{base}/auth/authorize",
        "token_endpoint": config.token_url,
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    }


def openid_configuration(config: SandboxConfig) -> dict:
    """The OpenID Provider metadata for the sandbox's id_tokens."""
    return {
        "issuer": config.fhir_base,
        "jwks_uri": f"{config.base_url}/auth/jwks",
        "authorization_endpoint": f"{config.base_url}/auth/authorize",
        "token_endpoint": config.token_url,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "fhirUser"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
    }


def resource_capability(profile: EhrProfile, rtype: str) -> dict:
    """One rest.resource entry: exactly what the profile offers for `rtype`."""
    rules = profile.rules(rtype)
    assert rules is not None
    entry: dict = {
        "type": rtype,
        "interaction": [{"code": c} for c in INTERACTIONS if rules.offers(c)],
        "versioning": "versioned-update" if rules.offers("update") else "versioned",
        "updateCreate": profile.update_create and rules.offers("update"),
        "conditionalCreate": rules.conditional_create,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [{"name": n, "type": kind} for n, kind in SEARCH_PARAMS],
    }
    if rules.create_categories is not None:
        entry["documentation"] = ("create is supported only for Observation categories "
                                  + ", ".join(sorted(rules.create_categories)))
    return entry


def capability_statement(config: SandboxConfig, stored_types: list[str]) -> dict:
    """A CapabilityStatement (R4) publishing exactly the configured EHR profile's capabilities."""
    profile = config.ehr_profile
    types = sorted(t for t in set(profile.resources) | set(stored_types)
                   if profile.rules(t) is not None)
    rest: dict = {
        "mode": "server",
        "security": {
            "cors": False,
            "service": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR",
            }]}],
            "extension": [{
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    {"url": "authorize", "valueUri": f"{config.base_url}/auth/authorize"},
                    {"url": "token", "valueUri": config.token_url},
                ],
            }],
        },
        "resource": [resource_capability(profile, t) for t in types],
    }
    # Listed only when offered: a client must not assume batch or transaction support.
    bundle_kinds = [kind for kind, offered in
                    (("transaction", profile.transaction), ("batch", profile.batch)) if offered]
    if bundle_kinds:
        rest["interaction"] = [{"code": kind} for kind in bundle_kinds]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-01",
        "kind": "instance",
        "software": {"name": SANDBOX_NAME},
        "implementation": {"description": f"{SANDBOX_NAME} ({profile.name} profile: "
                                          f"{profile.description})",
                           "url": config.fhir_base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }


SMART_STYLE = {
    "color_background": "#ffffff",
    "color_error": "#a00000",
    "color_highlight": "#1f3b57",
    "color_modal_backdrop": "",
    "color_success": "#1a7f37",
    "color_text": "#222222",
    "dim_border_radius": "4px",
    "dim_font_size": "14px",
    "dim_spacing_size": "16px",
    "font_family_body": "system-ui, sans-serif",
    "font_family_heading": "system-ui, sans-serif",
}


async def smart_config_route(request: Request) -> Response:
    """GET /fhir/.well-known/smart-configuration."""
    return JSONResponse(smart_configuration(sandbox_of(request).config))


async def openid_config_route(request: Request) -> Response:
    """GET /fhir/.well-known/openid-configuration."""
    return JSONResponse(openid_configuration(sandbox_of(request).config))


async def metadata_route(request: Request) -> Response:
    """GET /fhir/metadata, served without authorization."""
    sandbox = sandbox_of(request)
    return fhir_response(capability_statement(sandbox.config, sandbox.store.types()))


async def style_route(request: Request) -> Response:
    """GET /ehr/smart-style.json, the styling hints named in token responses."""
    return JSONResponse(SMART_STYLE)


routes = [
    Route("/fhir/.well-known/smart-configuration", smart_config_route, methods=["GET"]),
    Route("/fhir/.well-known/openid-configuration", openid_config_route, methods=["GET"]),
    Route("/fhir/metadata", metadata_route, methods=["GET"]),
    Route("/ehr/smart-style.json", style_route, methods=["GET"]),
]
