"""Discovery: smart-configuration, openid-configuration, CapabilityStatement, JWKS, style."""

from __future__ import annotations

import httpx


def test_smart_configuration(http: httpx.Client, base: str) -> None:
    doc = http.get("/fhir/.well-known/smart-configuration").json()
    assert doc["issuer"] == f"{base}/fhir"
    assert doc["authorization_endpoint"] == f"{base}/auth/authorize"
    assert doc["token_endpoint"] == f"{base}/auth/token"
    assert doc["jwks_uri"] == f"{base}/auth/jwks"
    assert set(doc["grant_types_supported"]) == {"authorization_code", "refresh_token",
                                                 "client_credentials"}
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "none"]
    assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    for capability in ("launch-ehr", "launch-standalone", "client-public",
                       "client-confidential-asymmetric", "context-ehr-patient",
                       "context-ehr-encounter", "context-standalone-patient",
                       "sso-openid-connect", "permission-patient", "permission-user",
                       "permission-v2", "permission-offline"):
        assert capability in doc["capabilities"]
    assert "openid" in doc["scopes_supported"]


def test_openid_configuration(http: httpx.Client, base: str) -> None:
    doc = http.get("/fhir/.well-known/openid-configuration").json()
    assert doc["issuer"] == f"{base}/fhir"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


def test_capability_statement_without_auth(http: httpx.Client, base: str) -> None:
    response = http.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    cs = response.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    rest = cs["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"batch", "transaction"}
    types = {r["type"]: r for r in rest["resource"]}
    assert {"Patient", "Condition", "Observation", "Claim", "Task"} <= set(types)
    assert types["Claim"]["conditionalCreate"] is True
    assert {i["code"] for i in types["Condition"]["interaction"]} >= {"read", "search-type",
                                                                     "create", "update"}
    (ext,) = rest["security"]["extension"]
    assert ext["url"] == ("http://fhir-registry.smarthealthit.org/StructureDefinition/"
                          "oauth-uris")
    uris = {e["url"]: e["valueUri"] for e in ext["extension"]}
    assert uris == {"authorize": f"{base}/auth/authorize", "token": f"{base}/auth/token"}


def test_jwks_and_style(http: httpx.Client) -> None:
    (key,) = http.get("/auth/jwks").json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and "d" not in key
    assert http.get("/ehr/smart-style.json").json()["color_background"]
