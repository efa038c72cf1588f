"""EHR profiles: what the sandbox's FHIR API offers, modelled on real EHRs, as data.

Real EHRs differ sharply in what they accept, and the app must work with all of them. Each
profile below is one frozen `EhrProfile`: per resource type the interactions offered (`read`,
`search-type`, `create`, `update`, `delete`), whether conditional create is offered, any
restriction on what may be created, and whether batch and transaction Bundles are accepted.
`/fhir/metadata` publishes exactly these capabilities, and the FHIR routes refuse the rest:

- an interaction the profile does not offer answers 405 with an OperationOutcome naming it
  ("Claim create is not supported by this server"); a type it does not serve answers 404;
- a batch or transaction Bundle where the profile offers none answers 405;
- a create outside the allowed categories (oracle-like Observations other than vital signs and
  laboratory results) answers 422;
- a PUT to an id that does not exist (create with a client-assigned id) is refused with 405
  unless the profile offers `updateCreate`;
- where conditional create is NOT offered, the `If-None-Exist` header (and a bundle entry's
  `ifNoneExist`) is silently IGNORED and the resource is simply created, as many real servers
  do. Two identical conditional creates then make two resources: the dangerous case the app
  must not rely on, and the reason it keeps its own record of what it has written.

The profiles follow the vendors' public CapabilityStatements as summarised in the issue that
asked for them (Epic: Claim and Consent read-only, Task read/update without create, Observation,
DocumentReference, Communication and QuestionnaireResponse create, no conditional create, no batch or transaction;
Oracle Health Millennium: no create for Claim, Task or Consent, Observation create only for
vital signs and labs, DocumentReference, Communication and ChargeItem create). `open` (Medplum,
HAPI) accepts everything, for any resource type: the sandbox's original behaviour. `strict` accepts what
`open` does but, like Medplum's server, compares reference search values with the stored reference text: a
bare id (`Coverage?beneficiary=123`) matches nothing, only `Patient/123` does. Medplum itself still reads a
bare `patient` or `subject` as a Patient; `strict` does not, so an app that leaves out the type anywhere finds
nothing in the tests that use it (issue 15: the app's Coverage search found nothing on Medplum).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from smart_app.sandbox.outcome import FhirError

READ = "read"
SEARCH = "search-type"
CREATE = "create"
UPDATE = "update"
DELETE = "delete"
INTERACTIONS = (READ, SEARCH, CREATE, UPDATE, DELETE)  # CapabilityStatement order

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

# The resource types the app reads or writes; every profile serves each of them.
APP_TYPES = (
    "Patient", "Condition", "Observation", "Consent", "Encounter", "CarePlan", "CareTeam",
    "Coverage", "Practitioner", "PractitionerRole", "Organization", "Claim", "ChargeItem",
    "Task", "DocumentReference", "Communication",
)
# Further clinical types the fixtures and the app may meet, served read/search everywhere.
OTHER_TYPES = (
    "Location", "Procedure", "MedicationRequest", "Medication", "Provenance",
    "QuestionnaireResponse", "AllergyIntolerance", "DiagnosticReport", "Goal", "Person",
)


@dataclass(frozen=True)
class ResourceRules:
    """What one server offers for one resource type."""

    interactions: frozenset[str]
    conditional_create: bool = False
    # Observation.category codes (observation-category system) a create must carry; None = any.
    create_categories: frozenset[str] | None = None

    def offers(self, interaction: str) -> bool:
        """Whether `interaction` ("read", "search-type", ...) is offered."""
        return interaction in self.interactions


@dataclass(frozen=True)
class EhrProfile:
    """One EHR's REST capabilities, published at /fhir/metadata and enforced on every call."""

    name: str
    description: str
    resources: Mapping[str, ResourceRules]
    batch: bool = False
    transaction: bool = False
    update_create: bool = False  # PUT to an absent id creates it (client-assigned ids)
    other_types: ResourceRules | None = None  # rules for unlisted types; None = not served
    # Reference search values must name their type (`patient=Patient/x`); a bare id matches nothing.
    typed_references: bool = False

    def rules(self, rtype: str) -> ResourceRules | None:
        """The rules for `rtype`, or None when this server does not serve that type."""
        return self.resources.get(rtype, self.other_types)

    def offers(self, rtype: str, interaction: str) -> bool:
        """Whether `interaction` on `rtype` is offered."""
        rules = self.rules(rtype)
        return rules is not None and rules.offers(interaction)

    def conditional_create(self, rtype: str) -> bool:
        """Whether If-None-Exist is honoured on creates of `rtype` (otherwise it is ignored)."""
        rules = self.rules(rtype)
        return rules is not None and rules.conditional_create

    def require(self, rtype: str, interaction: str) -> ResourceRules:
        """The rules for `rtype`; 404 for a type not served, 405 for an interaction not offered."""
        rules = self.rules(rtype)
        if rules is None:
            raise FhirError(404, f"resource type {rtype} is not supported by this server",
                            "not-supported")
        if not rules.offers(interaction):
            raise FhirError(405, f"{rtype} {interaction} is not supported by this server",
                            "not-supported")
        return rules

    def require_bundle(self, kind: str) -> None:
        """405 unless Bundles of this kind ("batch" or "transaction") are accepted."""
        if not (self.batch if kind == "batch" else self.transaction):
            raise FhirError(405, f"{kind} Bundles are not supported by this server",
                            "not-supported")

    def check_create(self, rules: ResourceRules, resource: dict) -> None:
        """422 when a create falls outside the type's create restrictions."""
        allowed = rules.create_categories
        if allowed is None:
            return
        codes = {coding.get("code")
                 for category in resource.get("category") or [] if isinstance(category, dict)
                 for coding in category.get("coding") or [] if isinstance(coding, dict)
                 if coding.get("system") in (None, OBSERVATION_CATEGORY)}
        if not codes & allowed:
            found = ", ".join(sorted(c for c in codes if isinstance(c, str))) or "none"
            raise FhirError(422, f"{resource.get('resourceType')} create is only supported for "
                                 f"categories {', '.join(sorted(allowed))} (got {found})",
                            "business-rule")


def _rules(*interactions: str, conditional: bool = False,
           categories: tuple[str, ...] | None = None) -> ResourceRules:
    return ResourceRules(frozenset(interactions), conditional,
                         frozenset(categories) if categories is not None else None)


_EVERYTHING = _rules(*INTERACTIONS, conditional=True)
_READ_ONLY = _rules(READ, SEARCH)


def _table(overrides: dict[str, ResourceRules], absent: tuple[str, ...] = ()) -> Mapping[str, ResourceRules]:
    """Every app type and other type but `absent`, read/search-only unless overridden."""
    unknown = set(overrides) - set(APP_TYPES) - set(OTHER_TYPES)
    if unknown:
        raise ValueError(f"profile overrides for unlisted types: {sorted(unknown)}")
    table = {t: overrides.get(t, _READ_ONLY) for t in (*APP_TYPES, *OTHER_TYPES) if t not in absent}
    return MappingProxyType(table)


OPEN = EhrProfile(
    name="open",
    description="An open server (Medplum, HAPI): every interaction on every type, conditional "
                "create, batch and transaction.",
    resources=MappingProxyType({t: _EVERYTHING for t in (*APP_TYPES, *OTHER_TYPES)}),
    batch=True,
    transaction=True,
    update_create=True,
    other_types=_EVERYTHING,
)

STRICT = replace(
    OPEN,
    name="strict",
    description="An open server that, like Medplum's, matches reference search values only with their type "
                "(patient=Patient/123): a bare id matches nothing.",
    typed_references=True,
)

EPIC_LIKE = EhrProfile(
    name="epic-like",
    description="Like Epic: Claim and Consent read-only, Task read/update without create, "
                "Observation, DocumentReference, Communication and QuestionnaireResponse create; no "
                "conditional create, no batch or transaction.",
    resources=_table({
        "Condition": _rules(READ, SEARCH, CREATE, UPDATE),
        "Observation": _rules(READ, SEARCH, CREATE, UPDATE),
        "Task": _rules(READ, SEARCH, UPDATE),
        "DocumentReference": _rules(READ, SEARCH, CREATE, UPDATE),
        "Communication": _rules(READ, SEARCH, CREATE),
        # Epic's QuestionnaireResponse.Create files a completed questionnaire (e.g. a PHQ-9) in the chart.
        "QuestionnaireResponse": _rules(READ, SEARCH, CREATE),
    }),
)

ORACLE_LIKE = EhrProfile(
    name="oracle-like",
    description="Like Oracle Health (Millennium): no create for Claim, Task or Consent, "
                "Observation create only for vital signs and laboratory results, "
                "DocumentReference, Communication and ChargeItem create; no conditional create, "
                "no batch or transaction; no PractitionerRole (users are Practitioners with "
                "qualifications, or Persons).",
    resources=_table({
        "Condition": _rules(READ, SEARCH, CREATE, UPDATE),
        "Observation": _rules(READ, SEARCH, CREATE, UPDATE,
                              categories=("vital-signs", "laboratory")),
        "Task": _rules(READ, SEARCH, UPDATE),
        "DocumentReference": _rules(READ, SEARCH, CREATE, UPDATE),
        "Communication": _rules(READ, SEARCH, CREATE),
        "ChargeItem": _rules(READ, SEARCH, CREATE),
    }, absent=("PractitionerRole",)),
)

PROFILES: Mapping[str, EhrProfile] = MappingProxyType(
    {p.name: p for p in (OPEN, STRICT, EPIC_LIKE, ORACLE_LIKE)}
)


def get_profile(name: str) -> EhrProfile:
    """The profile called `name`; ValueError naming the choices otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown sandbox EHR profile {name!r}; choose one of "
                         f"{', '.join(PROFILES)}") from None
