"""Who the signed-in user is, as the EHR describes them: name, NPI and the codes that may map to roles.

What each EHR exposes differs: Epic gives a Practitioner and PractitionerRoles coded with its own
per-instance code systems (`urn:oid:...`), and a user without a provider record gets a Practitioner
with no role; Oracle Health has no PractitionerRole at all, only Practitioner.qualification; a biller
may sign in as a Person. The app reads what there is and lets the organization's mappings decide.
"""

from __future__ import annotations

from dataclasses import dataclass

from smart_app.access.roles import CodeSource, RoleCode
from smart_app.ehr.names import human_name, npi

# The FHIR types a fhirUser may name (SMART App Launch: Practitioner, Patient, Person, RelatedPerson).
USER_TYPES = ("Practitioner", "PractitionerRole", "Person", "RelatedPerson", "Patient")


@dataclass(frozen=True)
class UserIdentity:
    """The signed-in user: their reference, name, NPI and role codes the EHR exposed."""

    reference: str | None
    name: str | None
    npi: str | None
    codes: tuple[RoleCode, ...]
    # Parts the EHR would not give (no PractitionerRole on Oracle, scope not granted...), for `org check`.
    unavailable: tuple[str, ...] = ()


def user_reference(fhir_user: str | None) -> str | None:
    """`Practitioner/x` from an absolute or relative fhirUser (`sub:...` kept), or None when it names no user."""
    if not fhir_user:
        return None
    if fhir_user.startswith("sub:"):
        return fhir_user
    parts = fhir_user.rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] not in USER_TYPES or not parts[-1]:
        return None
    return "/".join(parts[-2:])


def identity_queries(reference: str | None) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    """The reads that describe the user: (target, search parameters) by part name."""
    if not reference or reference.startswith("sub:"):
        return {}
    queries: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {"user": (reference, ())}
    if reference.startswith("Practitioner/"):
        queries["user_roles"] = ("PractitionerRole", (("practitioner", reference),))
    return queries


def _codings(concepts: object) -> list[dict]:
    return [c for concept in concepts if isinstance(concept, dict)
            for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")] \
        if isinstance(concepts, list) else []


def _code(source: CodeSource, coding: dict) -> RoleCode:
    return RoleCode(source, str(coding.get("system") or ""), str(coding["code"]), str(coding.get("display") or ""))


def role_codes(user: dict | None, practitioner_roles: list[dict]) -> tuple[RoleCode, ...]:
    """Codes from the user's PractitionerRoles (code and specialty) and Practitioner.qualification."""
    codes: list[RoleCode] = []
    for role in practitioner_roles:
        if role.get("resourceType") != "PractitionerRole" or role.get("active") is False:
            continue
        for coding in _codings(role.get("code")) + _codings(role.get("specialty")):
            codes.append(_code(CodeSource.PRACTITIONER_ROLE, coding))
    if user and user.get("resourceType") == "Practitioner":
        qualifications = [q.get("code") for q in user.get("qualification") or [] if isinstance(q, dict)]
        for coding in _codings(qualifications):
            codes.append(_code(CodeSource.QUALIFICATION, coding))
    return tuple(dict.fromkeys(codes))


def launch_codes(parameters: dict[str, str]) -> tuple[RoleCode, ...]:
    """Launch-context parameters the site added to the token response, as codes (system = parameter name)."""
    return tuple(RoleCode(CodeSource.LAUNCH, name, value) for name, value in sorted(parameters.items()))


def identity_from(reference: str | None, user: dict | None, practitioner_roles: list[dict],
                  unavailable: dict[str, str] | None = None) -> UserIdentity:
    """The user's identity from the resources read (any of them may be missing)."""
    own = [r for r in practitioner_roles
           if user_reference(str((r.get("practitioner") or {}).get("reference") or "")) == reference]
    return UserIdentity(reference=reference, name=human_name(user) if user else None,
                        npi=npi(user) if user else None, codes=role_codes(user, own),
                        unavailable=tuple(f"{part}: {why}" for part, why in (unavailable or {}).items()))
