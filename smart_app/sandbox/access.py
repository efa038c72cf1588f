"""Which resources a caller may touch: scopes, the patient compartment and scope filters."""

from __future__ import annotations

from dataclasses import dataclass, field

from smart_app.sandbox.outcome import FhirError
from smart_app.sandbox.references import SHARED_TYPES, patient_of
from smart_app.sandbox.scopes import ResourceScope
from smart_app.sandbox.search import Matcher, build_matcher

_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@dataclass
class Access:
    """The caller of one FHIR request: its granted clinical scopes and patient context."""

    client_id: str | None = None
    scopes: list[ResourceScope] = field(default_factory=list)
    patient: str | None = None
    unrestricted: bool = False  # open mode: everything allowed

    def covering(self, rtype: str, letter: str) -> list[ResourceScope]:
        """Scopes permitting `letter` on `rtype`; 403 when there are none."""
        if self.unrestricted:
            return []
        found = [s for s in self.scopes if s.covers_type(rtype, letter)]
        if not found:
            raise FhirError(403, f"no granted scope permits {_VERBS[letter]} on {rtype}")
        return found

    def search_limits(self, rtype: str) -> tuple[str | None, Matcher | None]:
        """(patient to restrict to, extra predicate) for a search of `rtype`."""
        scopes = self.covering(rtype, "s")
        if self.unrestricted or any(s.context != "patient" and not s.query for s in scopes):
            return None, None
        if all(s.context == "patient" for s in scopes) and rtype not in SHARED_TYPES:
            if self.patient is None:
                raise FhirError(403, "patient scopes were granted without a patient in context")
            restrict = self.patient
        else:
            restrict = None
        return restrict, lambda r: any(self._permits(s, r) for s in scopes)

    def check(self, resource: dict, letter: str) -> None:
        """Raise 403 unless some granted scope permits `letter` on this very resource."""
        scopes = self.covering(resource.get("resourceType", ""), letter)
        if self.unrestricted:
            return
        if not any(self._permits(s, resource) for s in scopes):
            rtype = resource.get("resourceType")
            raise FhirError(
                403, f"{rtype}/{resource.get('id')} is outside the granted patient compartment"
                if any(s.context == "patient" for s in scopes)
                else f"{rtype} does not match the filters of the granted scopes",
            )

    def _permits(self, scope: ResourceScope, resource: dict) -> bool:
        if scope.context == "patient" and resource.get("resourceType") not in SHARED_TYPES:
            if self.patient is None or patient_of(resource) != self.patient:
                return False
        for name, value in scope.query:
            matcher = build_matcher(resource.get("resourceType", ""), name, value)
            if matcher is not None and not matcher(resource):
                return False
        return True
