"""The patient's care manager, from the care team as the EHR codes it and the organization maps it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from smart_app.access.roles import CodeSource, RoleCode, RoleMapping, TimeRole
from smart_app.ehr.identity import user_reference
from smart_app.ehr.record import PatientRecord


@dataclass(frozen=True)
class TeamMember:
    """A care-team participant: FHIR reference, display name and the participant role codes."""

    reference: str
    name: str
    codes: tuple[RoleCode, ...]


def relative_reference(reference: str | None) -> str | None:
    """`Practitioner/x` from an absolute or relative reference."""
    return user_reference(reference)


def team_members(record: PatientRecord) -> list[TeamMember]:
    """Participants of the patient's active care teams who are people, with their role codes."""
    members = []
    for team in record.get("care_teams"):
        if team.get("status", "active") not in ("active", "proposed"):
            continue
        for participant in team.get("participant") or []:
            member = participant.get("member") or {}
            ref = relative_reference(member.get("reference"))
            if not ref:
                continue
            codes = tuple(RoleCode(CodeSource.CARE_TEAM, str(c.get("system") or ""), str(c["code"]),
                                   str(c.get("display") or ""))
                          for concept in participant.get("role") or [] if isinstance(concept, dict)
                          for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code"))
            members.append(TeamMember(ref, str(member.get("display") or ref), codes))
    return members


def care_manager(record: PatientRecord, mappings: Iterable[RoleMapping],
                 care_managers: Iterable[str] = ()) -> TeamMember | None:
    """The patient's care manager: a participant whose care-team role maps to the care-manager time role,
    else a participant the app knows as a care manager (`care_managers`, references)."""
    team = team_members(record)
    by_code = [m for m in mappings if m.source is CodeSource.CARE_TEAM and m.time_role is TimeRole.CARE_MANAGER]
    coded = next((member for member in team if any(m.matches(c) for m in by_code for c in member.codes)), None)
    if coded is not None:
        return coded
    known = set(care_managers)
    return next((member for member in team if member.reference in known), None)
