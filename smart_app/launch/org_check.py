"""`smart-app org check`: what an organization's EHR offers, and what is missing, in plain words."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from smart_app.ehr.capabilities import EhrCapabilities, fetch_capabilities
from smart_app.launch.discovery import SmartConfiguration, discover
from smart_app.launch.organizations import Organization
from smart_app.launch.scopes import launch_scopes


@dataclass(frozen=True)
class Check:
    """One requirement: whether the EHR meets it, and what to do when it does not."""

    ok: bool
    text: str
    fix: str = ""
    blocking: bool = True


def scope_listed(scope: str, supported: tuple[str, ...]) -> bool:
    """Whether the EHR's scopes_supported cover `scope`, wildcards (`patient/*.cruds`, `*.read`) included."""
    if scope in supported or "/" not in scope:
        return scope in supported
    level, _, rest = scope.partition("/")
    kind, _, wanted = rest.partition(".")
    for offered in supported:
        o_level, _, o_rest = offered.partition("/")
        o_kind, _, o_perms = o_rest.partition(".")
        if o_level != level or o_kind not in (kind, "*"):
            continue
        if o_perms in ("*", "write" if set(wanted) <= set("cud") else "read") or set(wanted) <= set(o_perms):
            return True
    return False


def _smart_checks(org: Organization, config: SmartConfiguration) -> list[Check]:
    caps = set(config.capabilities)
    checks = [
        Check("S256" in config.code_challenge_methods, "PKCE with S256",
              "Ask the EHR administrator to enable PKCE (SMART App Launch 2.0 requires S256)."),
        Check("launch-ehr" in caps, "EHR launch (launch-ehr)",
              "Enable EHR launch for the app in the EHR's app registration."),
        Check("context-ehr-patient" in caps, "Patient context at launch (context-ehr-patient)",
              "The app opens in a patient's chart; the EHR must pass the patient."),
        Check("sso-openid-connect" in caps or "openid" in config.scopes_supported,
              "OpenID Connect (who is signed in: openid fhirUser)",
              "Without fhirUser, time cannot be attributed to a person; enable openid and fhirUser.",
              blocking=False),
        Check("permission-v2" in caps, "SMART v2 scopes (permission-v2)",
              "The app asks for v2 scopes such as patient/Condition.rs; ask for v2 support.", blocking=False),
    ]
    if org.client_auth == "private_key_jwt":
        checks.append(Check("private_key_jwt" in config.token_auth_methods
                            or "client-confidential-asymmetric" in caps,
                            "Confidential asymmetric client authentication (private_key_jwt)",
                            "Register the app's JWKS URL, or set client_auth = \"public\" in the organization file."))
    backend = (f"backend client {org.backend_client_id}" if org.backend_client_id
               else f"launch client {org.client_id}")
    checks.append(Check("client_credentials" in config.grant_types,
                        f"Backend services for the month-end rollup (client_credentials, as {backend})",
                        "Without it the rollup cannot refresh facts from the EHR unattended.", blocking=False))
    if org.client_auth != "private_key_jwt" and not org.backend_client_id:
        checks.append(Check(False, "A confidential client for the month-end jobs",
                            "A public client cannot use backend services: register a backend app with the app's "
                            "JWKS URL and set backend_client_id in the organization file.", blocking=False))
    if config.scopes_supported:
        missing = [s for s in launch_scopes().split() if not scope_listed(s, config.scopes_supported)]
        checks.append(Check(not missing, "Scopes the app requests",
                            f"Not listed by the EHR: {' '.join(missing)}. Grant them to the app's registration.",
                            blocking=False))
    return checks


def _writeback_checks(caps: EhrCapabilities) -> list[Check]:
    out = []
    for kind in ("Consent", "Observation", "Task", "Claim", "DocumentReference"):
        out.append(Check(caps.can(kind, "create"), f"The EHR accepts {kind} from apps",
                         f"{kind} will stay in the app and reach billers through its export instead.",
                         blocking=False))
    out.append(Check(caps.batch, "Batch requests (one round trip per page)",
                     "Reads will run as concurrent requests instead.", blocking=False))
    return out


async def check_organization(http: httpx.AsyncClient,
                             org: Organization) -> tuple[list[Check], EhrCapabilities | None]:
    """Fetch the EHR's discovery documents; list what is met and missing, and what it can take."""
    config = await discover(http, org.issuer)
    caps, why_not = await fetch_capabilities(http, org.issuer)
    checks = [Check(True, f"Discovery found ({config.source}): authorize {config.authorization_endpoint}")]
    checks += _smart_checks(org, config)
    if why_not:
        checks.append(Check(False, "CapabilityStatement", f"{why_not}; write-back cannot be planned.", False))
        return checks, None
    return checks + _writeback_checks(caps), caps
