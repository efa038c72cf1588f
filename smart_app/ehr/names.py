"""People's names and identifiers as FHIR writes them (HumanName, NPI)."""

from __future__ import annotations

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"


def human_name(resource: dict) -> str | None:
    """A person's display name from FHIR HumanName (official first)."""
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    names.sort(key=lambda n: n.get("use") != "official")
    for name in names:
        if name.get("text"):
            return str(name["text"])
        parts = [*map(str, name.get("prefix") or []), *map(str, name.get("given") or []),
                 str(name.get("family") or "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return None


def npi(resource: dict) -> str | None:
    """The National Provider Identifier of a Practitioner or Organization, if it carries one."""
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == NPI_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    return None
