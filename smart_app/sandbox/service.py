"""FHIR interactions (read, search, create, update, delete) with authorization, shared by the
REST routes and batch/transaction bundles.

Every interaction is first checked against the EHR profile (profiles.py): what the profile does
not offer is refused (405/404/422), and If-None-Exist is ignored where conditional create is not
offered.
"""

from __future__ import annotations

import copy
from urllib.parse import parse_qsl

from smart_app.sandbox.access import Access
from smart_app.sandbox.outcome import FhirError
from smart_app.sandbox.profiles import CREATE, DELETE, OPEN, READ, SEARCH, UPDATE, EhrProfile
from smart_app.sandbox.references import PATIENT_FIELDS, reference_id
from smart_app.sandbox.search import SearchResult, patient_ids, run_search
from smart_app.sandbox.store import ID_RE, TYPE_RE, FhirStore, new_id

_PATIENT_PARAMS = ("patient", "subject", "beneficiary")


def check_type(rtype: str) -> None:
    """404 for a path segment that cannot be a resource type."""
    if not TYPE_RE.match(rtype):
        raise FhirError(404, f"unknown resource type {rtype!r}", "not-supported")


def check_body(resource: object, rtype: str) -> dict:
    """400 unless the body is a JSON resource of the expected type."""
    if not isinstance(resource, dict):
        raise FhirError(400, "the body must be a JSON FHIR resource")
    if resource.get("resourceType") != rtype:
        raise FhirError(
            400, f"resourceType {resource.get('resourceType')!r} does not match {rtype!r}"
        )
    meta = resource.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise FhirError(422, "meta must be an object")
    return resource


def conditional_params(criteria: str) -> list[tuple[str, str]]:
    """Search parameters from an If-None-Exist value (`a=b`, `?a=b` or `Type?a=b`)."""
    query = criteria.split("?", 1)[1] if "?" in criteria else criteria
    params = parse_qsl(query, keep_blank_values=False)
    if not params:
        raise FhirError(400, f"If-None-Exist criteria {criteria!r} has no search parameters")
    return params


class FhirService:
    """The interactions every route and bundle entry goes through."""

    def __init__(self, store: FhirStore, profile: EhrProfile = OPEN) -> None:
        self.store = store
        self.profile = profile

    def read(self, access: Access, rtype: str, rid: str) -> dict:
        """The resource, after checking the caller may read it."""
        check_type(rtype)
        self.profile.require(rtype, READ)
        access.covering(rtype, "r")
        resource = self.store.get(rtype, rid)
        if resource is None:
            raise FhirError(404, f"{rtype}/{rid} is not known")
        access.check(resource, "r")
        return resource

    def search(self, access: Access, rtype: str, params: list[tuple[str, str]]) -> SearchResult:
        """Search within what the caller's scopes allow."""
        check_type(rtype)
        self.profile.require(rtype, SEARCH)
        restrict, allow = access.search_limits(rtype)
        if restrict is not None:
            for name, value in params:
                if name.split(":")[0] in _PATIENT_PARAMS:
                    others = [p for p in patient_ids(value.split(",")) if p != restrict]
                    if others:
                        raise FhirError(403, f"patient {others[0]} is outside the granted "
                                             "patient compartment")
        return run_search(self.store, rtype, params, restrict, allow, self.profile.typed_references)

    def honours_if_none_exist(self, rtype: str, criteria: str | None) -> bool:
        """Whether conditional-create criteria are applied; without profile support they are
        ignored (not refused), as many real servers do."""
        return bool(criteria) and self.profile.conditional_create(rtype)

    def match_existing(self, rtype: str, criteria: str) -> list[dict]:
        """Resources of `rtype` matching conditional-create criteria (first two at most)."""
        params = [*conditional_params(criteria), ("_count", "2")]
        return run_search(self.store, rtype, params, typed_references=self.profile.typed_references).resources

    def create(self, access: Access, resource: dict, if_none_exist: str | None = None,
               rid: str | None = None, check_refs: bool = True) -> tuple[int, dict]:
        """Create (201) or, for a conditional create matching once, return the match (200)."""
        rtype = resource.get("resourceType", "")
        check_type(rtype)
        check_body(resource, rtype)
        rules = self.profile.require(rtype, CREATE)
        access.covering(rtype, "c")
        self.profile.check_create(rules, resource)
        with self.store.db.transaction():
            if if_none_exist and self.honours_if_none_exist(rtype, if_none_exist):
                matches = self.match_existing(rtype, if_none_exist)
                if len(matches) > 1:
                    raise FhirError(412, f"If-None-Exist {if_none_exist!r} matches more than "
                                         "one resource")
                if matches:
                    access.check(matches[0], "c")
                    return 200, matches[0]
            resource = copy.deepcopy(resource)
            resource["id"] = rid or new_id()
            resource.pop("meta", None)
            access.check(resource, "c")
            if check_refs:
                self.check_references(resource)
            return 201, self.store.save(resource)

    def update(self, access: Access, rtype: str, rid: str, resource: object,
               if_match: str | None = None, check_refs: bool = True) -> tuple[int, dict]:
        """Update (200) or create with the client's id (201)."""
        check_type(rtype)
        resource = check_body(resource, rtype)
        if resource.get("id") != rid:
            raise FhirError(400, f"the body's id {resource.get('id')!r} does not match {rid!r}")
        if not ID_RE.match(rid):
            raise FhirError(400, f"{rid!r} is not a valid FHIR id")
        self.profile.require(rtype, UPDATE)
        access.covering(rtype, "u")
        with self.store.db.transaction():
            existing = self.store.get(rtype, rid)
            if existing is not None:
                access.check(existing, "u")
            elif not self.profile.update_create:
                raise FhirError(405, f"{rtype} create by update (PUT to the new id {rid}) is "
                                     "not supported by this server", "not-supported")
            if if_match:
                current = (existing or {}).get("meta", {}).get("versionId")
                wanted = if_match.removeprefix("W/").strip('"')
                if current != wanted:
                    raise FhirError(412, f"If-Match {if_match} does not match version {current}")
            resource = copy.deepcopy(resource)
            access.check(resource, "u")
            if check_refs:
                self.check_references(resource)
            return (200 if existing else 201), self.store.save(resource)

    def delete(self, access: Access, rtype: str, rid: str) -> None:
        """Delete a resource; deleting an absent one succeeds, as FHIR allows."""
        check_type(rtype)
        self.profile.require(rtype, DELETE)
        access.covering(rtype, "d")
        with self.store.db.transaction():
            existing = self.store.get(rtype, rid)
            if existing is not None:
                access.check(existing, "d")
                self.store.delete(rtype, rid)

    def check_references(self, resource: dict) -> None:
        """422 when a patient reference points nowhere (catches app bugs early)."""
        for name in PATIENT_FIELDS:
            value = resource.get(name)
            ref = value.get("reference") if isinstance(value, dict) else None
            if not ref:
                continue
            if ref.startswith("urn:"):
                raise FhirError(422, f"{name} reference {ref!r} was not resolved")
            pid = reference_id(ref, "Patient")
            if pid and not self.store.exists("Patient", pid):
                raise FhirError(422, f"{name} references Patient/{pid}, which does not exist")
