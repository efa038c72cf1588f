"""Who is who on the patient's care team: the signed-in user's billing role and the care manager."""

from __future__ import annotations

from dataclasses import dataclass

from smart_app.ehr.record import PatientRecord

CARE_TEAM_ROLE = "http://example.org/fhir/CodeSystem/care-team-role"
# The ledger's performer roles; a behavioral-health care manager is the CoCM care manager.
ROLE_OF_CODE = {"clinical-staff": "clinical-staff", "care-manager": "care-manager",
                "bh-care-manager": "care-manager", "billing-practitioner": "billing-practitioner",
                "psychiatric-consultant": "psychiatric-consultant"}
CARE_MANAGER_CODES = ("care-manager", "bh-care-manager")


@dataclass(frozen=True)
class TeamMember:
    """A care-team participant: FHIR reference, display name and role code."""

    reference: str
    name: str
    role_code: str


def relative_reference(reference: str | None) -> str | None:
    """`Practitioner/x` from an absolute or relative reference."""
    if not reference:
        return None
    parts = reference.rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def team_members(record: PatientRecord) -> list[TeamMember]:
    """Participants of the patient's active care teams that carry a care-team role code."""
    members = []
    for team in record.get("care_teams"):
        if team.get("status", "active") not in ("active", "proposed"):
            continue
        for participant in team.get("participant") or []:
            member = participant.get("member") or {}
            ref = relative_reference(member.get("reference"))
            codes = [c.get("code") for concept in participant.get("role") or []
                     for c in concept.get("coding") or [] if c.get("system") == CARE_TEAM_ROLE]
            if ref and codes:
                members.append(TeamMember(ref, str(member.get("display") or ref), str(codes[0])))
    return members


def user_role(record: PatientRecord, fhir_user: str | None, billing_practitioner: str) -> str:
    """The signed-in user's billing role for this patient; clinical staff when nothing says more.

    Clinical staff is the conservative default: its minutes never count toward codes the billing
    practitioner must perform personally.
    """
    user = relative_reference(fhir_user)
    for member in team_members(record):
        if member.reference == user and member.role_code in ROLE_OF_CODE:
            return ROLE_OF_CODE[member.role_code]
    if user and user == relative_reference(billing_practitioner):
        return "billing-practitioner"
    return "clinical-staff"


def care_manager(record: PatientRecord) -> TeamMember | None:
    """The patient's care manager from the care team, if one is named."""
    return next((m for m in team_members(record) if m.role_code in CARE_MANAGER_CODES), None)
