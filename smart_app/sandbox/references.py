"""Finding the patient a resource belongs to, and rewriting references inside a resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Where a resource points at its patient, in the order we trust them.
PATIENT_FIELDS = ("subject", "patient", "beneficiary", "for")

# Types outside the patient compartment: readable with a patient/ scope for the type.
SHARED_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "Person", "Organization", "Location", "Medication",
     "HealthcareService", "Endpoint", "Device", "Substance", "ValueSet", "CodeSystem",
     "Questionnaire", "PlanDefinition", "ActivityDefinition", "Group"}
)


def reference_id(reference: str | None, rtype: str) -> str | None:
    """The id in `rtype/id` (relative or absolute, history suffix allowed), else None."""
    if not reference:
        return None
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == rtype and parts[-1]:
        return parts[-1]
    return None


def patient_of(resource: dict) -> str | None:
    """The patient id a resource belongs to (its own id for a Patient), else None."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id")
    for name in PATIENT_FIELDS:
        value = resource.get(name)
        if isinstance(value, dict):
            pid = reference_id(value.get("reference"), "Patient")
            if pid:
                return pid
    return None


def rewrite_references(node: Any, replace: Callable[[str], str | None]) -> Any:
    """Replace every `reference` string for which `replace` returns a new value, in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                new = replace(value)
                if new is not None:
                    node[key] = new
            else:
                rewrite_references(value, replace)
    elif isinstance(node, list):
        for item in node:
            rewrite_references(item, replace)
    return node
