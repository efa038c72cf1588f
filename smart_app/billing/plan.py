"""Per organization, where each month-end resource goes in the EHR: the write-back plan.

The plan is computed from the EHR's CapabilityStatement (`EhrCapabilities`) and may be overridden in the
organization's file under `[writeback]`:

    [writeback]
    minutes = "DocumentReference"   # a type this purpose may use, or "none" (export and biller page only)
    claim = "none"
    conditional_create = false      # or a list of types; only narrows what the EHR offers unless forced
    transaction = false
    force = true                    # accept a type or feature the CapabilityStatement does not offer

Each purpose falls back where the EHR does not accept the preferred type: claims as Claim, else ChargeItem;
minutes as Observation, else a DocumentReference note; activities as Task, else Communication, else a
DocumentReference note; the superbill as a DocumentReference; consents as Consent. What no channel takes
reaches billers through the export and the biller page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from smart_app.ehr.capabilities import EhrCapabilities
from smart_app.errors import ConfigError

# Purpose -> the resource types it may use, most preferred first.
CHOICES: Mapping[str, tuple[str, ...]] = {
    "claim": ("Claim", "ChargeItem"),
    "minutes": ("Observation", "DocumentReference"),
    "activity": ("Task", "Communication", "DocumentReference"),
    "superbill": ("DocumentReference",),
    "consent": ("Consent",),
    # A rating scale recorded in the app, item by item: written at once (a safety alert cannot wait for the
    # month's claim). Epic takes QuestionnaireResponse; Oracle Health takes only notes and messages.
    "scale": ("Observation", "QuestionnaireResponse", "Communication", "DocumentReference"),
    # The signed comprehensive care plan: a CarePlan with its Goals where the EHR accepts them, else its PDF.
    "care_plan": ("CarePlan", "DocumentReference"),
}
PURPOSES = tuple(CHOICES)
LABELS = {"claim": "Claims", "minutes": "Minutes", "activity": "Activities", "superbill": "Superbills",
          "consent": "Consents", "scale": "Rating scales", "care_plan": "Care plans"}
NONE = "none"
_FEATURE_KEYS = ("conditional_create", "transaction", "can_update_claim", "force")
SECTION = "[writeback]"
EXPORT_ONLY = "not sent; billers get them from the export and the biller page"
# What stays in the app when the EHR takes nothing for a purpose that is not a billing record.
NOT_SENT = {"scale": "not sent; kept in the app and printed on the superbill (tell the care team of a safety "
                     "alert directly)",
            "care_plan": "not sent; kept in the app (print the patient copy from the care plan page)"}


@dataclass(frozen=True)
class WritebackPlan:
    """Where each purpose goes (a resource type, or None: export and biller page only) and what the EHR offers."""

    claim: str | None
    minutes: str | None
    activity: str | None
    superbill: str | None
    consent: str | None
    conditional_create: frozenset[str]
    transaction: bool
    can_update_claim: bool
    notes: tuple[str, ...] = ()
    # Purposes whose target the organization file set (rather than the CapabilityStatement).
    overridden: frozenset[str] = frozenset()
    scale: str | None = None
    care_plan: str | None = None

    def target(self, purpose: str) -> str | None:
        """The resource type used for `purpose` ("claim", "minutes", ...), or None."""
        if purpose not in CHOICES:
            raise ValueError(f"unknown write-back purpose {purpose!r}; one of {', '.join(PURPOSES)}")
        target: str | None = getattr(self, purpose)
        return target

    def types(self) -> frozenset[str]:
        """Every resource type the plan creates."""
        return frozenset(t for t in (self.target(p) for p in PURPOSES) if t)


def _default(caps: EhrCapabilities, purpose: str) -> str | None:
    return next((t for t in CHOICES[purpose] if caps.can(t, "create")), None)


def _bad(key: str, value: object, expected: str) -> ConfigError:
    return ConfigError(f"{SECTION} {key} = {value!r} in the organization file is not valid.",
                       f"Use {expected}.")


def _choice(purpose: str, value: object) -> str | None:
    options = CHOICES[purpose]
    expected = " or ".join(f'"{o}"' for o in (*options, NONE))
    if not isinstance(value, str):
        raise _bad(purpose, value, expected)
    if value.strip().lower() == NONE:
        return None
    for option in options:
        if value.strip().lower() == option.lower():
            return option
    raise _bad(purpose, value, expected)


def _bool(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _bad(key, value, "true or false")
    return value


def _checked_overrides(overrides: object) -> Mapping[str, object]:
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{SECTION} in the organization file must be a table.",
                          'For example:\n[writeback]\nminutes = "DocumentReference"')
    unknown = sorted(set(overrides) - set(PURPOSES) - set(_FEATURE_KEYS))
    if unknown:
        raise ConfigError(f"{SECTION} {unknown[0]} in the organization file is not a known setting.",
                          f"Known settings: {', '.join((*PURPOSES, *_FEATURE_KEYS))}.")
    return overrides


def _refused(key: str, what: str) -> ConfigError:
    return ConfigError(f"{SECTION} {key}: the EHR's CapabilityStatement does not offer {what}.",
                       f"Choose what the EHR accepts (see `smart-app org check`), or add force = true under "
                       f"{SECTION} if you know the EHR accepts it anyway.")


def plan_for(caps: EhrCapabilities, overrides: object = None) -> WritebackPlan:
    """The write-back plan for an EHR with `caps`, with the organization file's `[writeback]` overrides.

    ConfigError naming the key for a bad value, an unknown key, or (without `force = true`) a type or
    feature the EHR does not offer.
    """
    overrides = _checked_overrides(overrides)
    force = _bool("force", overrides.get("force", False))
    notes: list[str] = []
    targets: dict[str, str | None] = {}
    overridden: set[str] = set()
    for purpose in PURPOSES:
        chosen = _default(caps, purpose)
        if purpose in overrides:
            wanted = _choice(purpose, overrides[purpose])
            if wanted != chosen:
                overridden.add(purpose)
            if wanted is not None and not caps.can(wanted, "create"):
                if not force:
                    raise _refused(purpose, f"{wanted} create")
                notes.append(f"{LABELS[purpose]} go as {wanted} although the EHR's CapabilityStatement does not "
                             f"offer {wanted} create (force = true in the organization file).")
            if wanted != chosen:
                notes.append(f"{LABELS[purpose]}: {wanted or NONE} set in the organization file "
                             f"(the EHR's CapabilityStatement suggests {chosen or NONE}).")
            chosen = wanted
        targets[purpose] = chosen

    conditional = frozenset(caps.conditional_create)
    if "conditional_create" in overrides:
        value = overrides["conditional_create"]
        if isinstance(value, bool):
            wanted_types = frozenset(caps.conditional_create) if value else frozenset()
        elif isinstance(value, list) and all(isinstance(v, str) and v for v in value):
            wanted_types = frozenset(value)
        else:
            raise _bad("conditional_create", value, 'true, false or a list of types such as ["Observation"]')
        beyond = sorted(wanted_types - caps.conditional_create)
        if beyond and not force:
            raise _refused("conditional_create", f"conditional create for {', '.join(beyond)}")
        if wanted_types != conditional:
            notes.append("Conditional create: set in the organization file "
                         f"({', '.join(sorted(wanted_types)) or 'none'}).")
        conditional = wanted_types

    transaction = caps.transaction
    if "transaction" in overrides:
        use_bundles = _bool("transaction", overrides["transaction"])
        if use_bundles and not caps.transaction and not force:
            raise _refused("transaction", "transaction Bundles")
        if use_bundles != transaction:
            notes.append(f"Transaction Bundles: {'used' if use_bundles else 'not used'} as set in the organization "
                         "file.")
        transaction = use_bundles

    claim_type = targets["claim"]
    can_update = bool(claim_type) and caps.can(claim_type or "", "update")
    if "can_update_claim" in overrides:
        update_claims = _bool("can_update_claim", overrides["can_update_claim"])
        if update_claims and not claim_type:
            raise _bad("can_update_claim", update_claims, "false while claims are not sent (claim = \"none\")")
        if update_claims and not can_update and not force:
            raise _refused("can_update_claim", f"{claim_type} update")
        can_update = update_claims
    return WritebackPlan(claim=targets["claim"], minutes=targets["minutes"], activity=targets["activity"],
                         superbill=targets["superbill"], consent=targets["consent"], scale=targets["scale"],
                         care_plan=targets["care_plan"],
                         conditional_create=conditional, transaction=transaction, can_update_claim=can_update,
                         notes=tuple(notes), overridden=frozenset(overridden))


def capabilities_for(caps: EhrCapabilities, plan: WritebackPlan) -> EhrCapabilities:
    """The capabilities the outbox should act on: the EHR's, as the plan overrides them.

    A type forced in the plan counts as creatable, and conditional create and transactions are exactly
    what the plan says (an organization file may turn them off, or force them on).
    """
    interactions = dict(caps.interactions)
    for kind in plan.types():
        interactions[kind] = interactions.get(kind, frozenset()) | {"create"}
    if plan.claim and plan.can_update_claim:
        interactions[plan.claim] = interactions.get(plan.claim, frozenset()) | {"update"}
    return dataclasses.replace(caps, interactions=interactions, conditional_create=plan.conditional_create,
                               transaction=plan.transaction)


def _line(purpose: str, target: str | None, overridden: bool) -> str:
    label = LABELS[purpose]
    if target is None:
        return f"{label}: {NOT_SENT.get(purpose, EXPORT_ONLY)}" + (" (set in the organization file)" if overridden
                                                                    else "")
    if overridden:
        return f"{label}: as {target} resources (set in the organization file)"
    preferred = CHOICES[purpose]
    skipped = preferred[:preferred.index(target)]
    if not skipped:
        return f"{label}: as {target} resources"
    return f"{label}: as {target} (the EHR does not accept {' or '.join(skipped)} from apps)"


def _duplicates(plan: WritebackPlan) -> str | None:
    used = plan.types()
    if not used:
        return None
    conditional = sorted(used & plan.conditional_create)
    if not conditional:
        return ("Duplicates: prevented by searching for each resource's identifier before creating it "
                "(the EHR offers no conditional create)")
    how = "conditional create (If-None-Exist)" + (" inside transaction Bundles" if plan.transaction else "")
    rest = "" if set(conditional) == used else (f" for {', '.join(conditional)}; the others are searched by "
                                                 "identifier before each create")
    return f"Duplicates: prevented by {how}{rest}"


def describe_plan(plan: WritebackPlan) -> list[str]:
    """The plan in plain sentences: one per purpose, claim corrections, how duplicates are prevented, notes."""
    lines = [_line(p, plan.target(p), p in plan.overridden) for p in PURPOSES]
    if plan.claim:
        lines.append(f"Corrections to a sent claim: as an update of the {plan.claim}" if plan.can_update_claim
                     else "Corrections to a sent claim: by hand in the EHR (the EHR does not accept updates "
                          "from apps)")
    duplicates = _duplicates(plan)
    if duplicates:
        lines.append(duplicates)
    return lines + list(plan.notes)
