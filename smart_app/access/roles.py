"""Roles as values, and the pure decision of a person's roles from assignments and EHR codes.

Two kinds of role. A *time role* says how a person's minutes count under the billing rules
(clinical staff, care manager, billing practitioner, psychiatric consultant). An *app role* says
what a person may do in the app (clinician, care manager, biller, administrator). Real EHRs put
neither in the token: Epic codes PractitionerRole with per-instance code systems, Oracle Health has
no PractitionerRole at all. So each organization keeps its own assignments in the app, and may map
what its EHR does expose (PractitionerRole codes, Practitioner.qualification, care-team roles, a
launch-context parameter) onto roles. Explicit assignments win over mappings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class AppRole(StrEnum):
    """What a person may do in the app."""

    CLINICIAN = "clinician"
    CARE_MANAGER = "care-manager"
    BILLER = "biller"
    ADMINISTRATOR = "administrator"

    @property
    def label(self) -> str:
        """How pages name the role."""
        return {"clinician": "clinician", "care-manager": "care manager", "biller": "biller",
                "administrator": "administrator"}[self.value]


class TimeRole(StrEnum):
    """Who performed the minutes, as the rule sets count them."""

    CLINICAL_STAFF = "clinical-staff"
    CARE_MANAGER = "care-manager"
    BILLING_PRACTITIONER = "billing-practitioner"
    PSYCHIATRIC_CONSULTANT = "psychiatric-consultant"

    @property
    def label(self) -> str:
        """How pages name the role."""
        return self.value.replace("-", " ")


class CodeSource(StrEnum):
    """Where in the EHR a role code was seen."""

    PRACTITIONER_ROLE = "practitioner-role"  # PractitionerRole.code and .specialty of the signed-in user
    QUALIFICATION = "qualification"  # Practitioner.qualification.code of the signed-in user
    CARE_TEAM = "care-team"  # CareTeam.participant.role, for the patient's care manager
    LAUNCH = "launch"  # a launch-context parameter of the token response (system = its name)


# Where a mapping names a time role but no app role: what that person does in the app.
DEFAULT_APP_ROLES: dict[TimeRole, frozenset[AppRole]] = {
    TimeRole.CLINICAL_STAFF: frozenset({AppRole.CLINICIAN}),
    TimeRole.CARE_MANAGER: frozenset({AppRole.CLINICIAN, AppRole.CARE_MANAGER}),
    TimeRole.BILLING_PRACTITIONER: frozenset({AppRole.CLINICIAN}),
    TimeRole.PSYCHIATRIC_CONSULTANT: frozenset({AppRole.CLINICIAN}),
}


@dataclass(frozen=True)
class RoleCode:
    """One code the EHR exposed about a person: where it was seen, its system and its code."""

    source: CodeSource
    system: str
    code: str
    display: str = ""

    def to_json(self) -> dict[str, str]:
        """JSON form, as kept on the session."""
        return {"source": self.source.value, "system": self.system, "code": self.code, "display": self.display}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> RoleCode:
        """The inverse of `to_json`."""
        return cls(CodeSource(data["source"]), data.get("system", ""), data["code"], data.get("display", ""))

    def describe(self) -> str:
        """`practitioner-role urn:oid:...|1050 (Care manager)`, for lists and `org check`."""
        shown = f"{self.system}|{self.code}" if self.system else self.code
        return f"{self.source.value} {shown}" + (f" ({self.display})" if self.display else "")


@dataclass(frozen=True)
class RoleMapping:
    """An organization's rule: a code of the EHR gives these roles."""

    source: CodeSource
    system: str
    code: str
    app_roles: frozenset[AppRole]
    time_role: TimeRole | None

    def matches(self, code: RoleCode) -> bool:
        """Whether the EHR code is the one this mapping names (an empty system matches any system)."""
        return (code.source == self.source and code.code == self.code
                and (not self.system or code.system == self.system))


@dataclass(frozen=True)
class Assignment:
    """An explicit role held in the app, granted by an administrator or seeded from the organization file."""

    user: str
    app_roles: frozenset[AppRole]
    time_role: TimeRole | None


class Basis(StrEnum):
    """Why a person holds the roles they hold."""

    ASSIGNED = "assigned in the app"
    MAPPED = "mapped from the EHR"
    BILLING_PRACTITIONER = "the organization's billing practitioner"
    UNKNOWN = "not known"


@dataclass(frozen=True)
class Roles:
    """A person's roles in one organization, and why."""

    app_roles: frozenset[AppRole]
    time_role: TimeRole | None
    basis: Basis
    # The mappings or assignment that gave the roles, for `org check` and the admin page.
    because: tuple[str, ...] = ()

    def has_any(self, wanted: Iterable[AppRole]) -> bool:
        """Whether the person holds at least one of `wanted`."""
        return bool(self.app_roles & frozenset(wanted))

    @property
    def label(self) -> str:
        """`care manager, clinician` or `no role`, for the page header."""
        names = sorted(r.label for r in self.app_roles)
        return ", ".join(names) if names else "no role in the app yet"


NO_ROLES = Roles(frozenset(), None, Basis.UNKNOWN)


def resolve_roles(user: str | None, codes: Iterable[RoleCode], mappings: Iterable[RoleMapping],
                  assignments: Iterable[Assignment], billing_practitioner: str = "") -> Roles:
    """A person's roles: explicit assignments first, then mappings of the EHR's codes, then the billing setting.

    A time role assigned explicitly wins over a mapped one; app roles assigned add to the mapped ones (granting
    a nurse the biller role leaves them a clinician). Among mappings the first in file order that names a time
    role decides it, so an organization file lists its most specific codes first.
    """
    mine = [a for a in assignments if user and a.user == user]
    assigned_app = frozenset(r for a in mine for r in a.app_roles)
    assigned_time = next((a.time_role for a in mine if a.time_role), None)
    seen = list(codes)
    matched = [m for m in mappings if any(m.matches(c) for c in seen)]
    mapped_time = next((m.time_role for m in matched if m.time_role), None)
    mapped_app = frozenset(r for m in matched
                            for r in (m.app_roles or (DEFAULT_APP_ROLES[m.time_role] if m.time_role else ())))
    # The organization file names its billing practitioner; that person's minutes are theirs to bill.
    is_billing = bool(user and billing_practitioner and user == billing_practitioner)
    time_role = assigned_time or mapped_time or (TimeRole.BILLING_PRACTITIONER if is_billing else None)
    app_roles = assigned_app | mapped_app or (DEFAULT_APP_ROLES[TimeRole.BILLING_PRACTITIONER] if is_billing
                                              else frozenset())
    because: tuple[str, ...]
    if mine:
        basis, because = Basis.ASSIGNED, ("assigned in the app",)
    elif matched:
        basis, because = Basis.MAPPED, tuple(f"{m.source.value} {m.system}|{m.code}".replace(" |", " ")
                                             for m in matched)
    elif is_billing:
        basis, because = Basis.BILLING_PRACTITIONER, ("billing_practitioner in the organization file",)
    else:
        return NO_ROLES
    return Roles(app_roles, time_role, basis, because)
