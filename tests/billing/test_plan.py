"""The write-back plan: where each resource goes for what the EHR offers, and the organization file's overrides."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

import smart_app.paths
from smart_app.billing.plan import WritebackPlan, capabilities_for, describe_plan, plan_for
from smart_app.ehr.capabilities import EhrCapabilities, fetch_capabilities
from smart_app.errors import ConfigError
from smart_app.sandbox import SandboxConfig, create_app
from tests.live_server import serve

ALL = frozenset({"read", "search-type", "create", "update"})
READ = frozenset({"read", "search-type"})
TYPES = ("Claim", "ChargeItem", "Observation", "Task", "Communication", "DocumentReference", "Consent", "Patient",
         "CarePlan")

OPEN = EhrCapabilities(batch=True, transaction=True, interactions={t: ALL for t in TYPES},
                       conditional_create=frozenset(TYPES))
EPIC = EhrCapabilities(interactions={
    **{t: READ for t in TYPES}, "Observation": ALL, "DocumentReference": ALL,
    "Communication": READ | {"create"}, "Task": READ | {"update"}})
ORACLE = EhrCapabilities(interactions={
    **{t: READ for t in TYPES}, "Observation": ALL, "DocumentReference": ALL,
    "Communication": READ | {"create"}, "ChargeItem": READ | {"create"}, "Task": READ | {"update"}})
NOTHING = EhrCapabilities()


def test_an_open_ehr_takes_every_resource_as_its_own_type() -> None:
    plan = plan_for(OPEN, None)
    assert plan == WritebackPlan(claim="Claim", minutes="Observation", activity="Task", superbill="DocumentReference",
                                 consent="Consent", conditional_create=frozenset(TYPES), transaction=True,
                                 can_update_claim=True, notes=(), scale="Observation", care_plan="CarePlan")
    assert describe_plan(plan) == [
        "Claims: as Claim resources",
        "Minutes: as Observation resources",
        "Activities: as Task resources",
        "Superbills: as DocumentReference resources",
        "Consents: as Consent resources",
        "Rating scales: as Observation resources",
        "Care plans: as CarePlan resources",
        "Corrections to a sent claim: as an update of the Claim",
        "Duplicates: prevented by conditional create (If-None-Exist) inside transaction Bundles",
    ]


def test_an_epic_like_ehr_falls_back_and_leaves_claims_to_the_export() -> None:
    plan = plan_for(EPIC, {})
    assert (plan.claim, plan.minutes, plan.activity, plan.superbill, plan.consent) == (
        None, "Observation", "Communication", "DocumentReference", None)
    assert (plan.conditional_create, plan.transaction, plan.can_update_claim) == (frozenset(), False, False)
    lines = describe_plan(plan)
    assert "Claims: not sent; billers get them from the export and the biller page" in lines
    assert "Activities: as Communication (the EHR does not accept Task from apps)" in lines
    assert "Consents: not sent; billers get them from the export and the biller page" in lines
    assert "Care plans: as DocumentReference (the EHR does not accept CarePlan from apps)" in lines
    assert lines[-1] == ("Duplicates: prevented by searching for each resource's identifier before creating it "
                         "(the EHR offers no conditional create)")
    assert not any(line.startswith("Corrections") for line in lines)


def test_an_oracle_like_ehr_gets_charge_items_and_minutes_can_be_routed_to_a_note() -> None:
    plan = plan_for(ORACLE, None)
    assert (plan.claim, plan.minutes, plan.activity) == ("ChargeItem", "Observation", "Communication")
    assert "Claims: as ChargeItem (the EHR does not accept Claim from apps)" in describe_plan(plan)
    routed = plan_for(ORACLE, {"minutes": "DocumentReference"})
    assert routed.minutes == "DocumentReference" and routed.overridden == frozenset({"minutes"})
    lines = describe_plan(routed)
    assert "Minutes: as DocumentReference resources (set in the organization file)" in lines
    assert "Minutes: DocumentReference set in the organization file (the EHR's CapabilityStatement suggests " \
           "Observation)." in lines


def test_an_ehr_that_takes_nothing_sends_nothing() -> None:
    plan = plan_for(NOTHING, None)
    assert plan.types() == frozenset()
    lines = describe_plan(plan)
    assert lines == [f"{label}: not sent; billers get them from the export and the biller page"
                     for label in ("Claims", "Minutes", "Activities", "Superbills", "Consents")] + [
        "Rating scales: not sent; kept in the app and printed on the superbill (tell the care team of a safety "
        "alert directly)",
        "Care plans: not sent; kept in the app (print the patient copy from the care plan page)"]
    # Activities fall back all the way to a DocumentReference note.
    only_notes = EhrCapabilities(interactions={"DocumentReference": ALL})
    assert plan_for(only_notes, None).activity == "DocumentReference"
    assert ("Activities: as DocumentReference (the EHR does not accept Task or Communication from apps)"
            in describe_plan(plan_for(only_notes, None)))


def test_overrides_to_none_and_case_insensitive_names() -> None:
    plan = plan_for(OPEN, {"claim": "none", "activity": "communication", "conditional_create": False,
                           "transaction": False})
    assert plan.claim is None and plan.activity == "Communication" and not plan.can_update_claim
    assert plan.conditional_create == frozenset() and plan.transaction is False
    lines = describe_plan(plan)
    assert ("Claims: not sent; billers get them from the export and the biller page (set in the organization "
            "file)") in lines
    assert "Activities: as Communication resources (set in the organization file)" in lines
    assert any(line.startswith("Duplicates: prevented by searching") for line in lines)
    assert plan_for(OPEN, {"conditional_create": ["Observation"]}).conditional_create == frozenset({"Observation"})


@pytest.mark.parametrize(("overrides", "key"), [
    ({"minutes": "Task"}, "minutes"),
    ({"claim": 3}, "claim"),
    ({"activity": ""}, "activity"),
    ({"superbill": "Binary"}, "superbill"),
    ({"transaction": "yes"}, "transaction"),
    ({"force": "true"}, "force"),
    ({"conditional_create": "Observation"}, "conditional_create"),
    ({"claims": "Claim"}, "claims"),
    ({"can_update_claim": 1}, "can_update_claim"),
])
def test_a_bad_override_names_its_key(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        plan_for(OPEN, overrides)
    assert f"[writeback] {key}" in caught.value.message
    assert caught.value.hint


def test_the_writeback_section_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"\[writeback\] in the organization file must be a table"):
        plan_for(OPEN, "minutes")  # type: ignore[arg-type]


@pytest.mark.parametrize("overrides", [
    {"claim": "Claim"}, {"activity": "Task"}, {"consent": "Consent"}, {"transaction": True},
    {"conditional_create": ["Observation"]}, {"minutes": "DocumentReference", "claim": "ChargeItem"},
])
def test_an_override_the_ehr_does_not_offer_needs_force(overrides: dict) -> None:
    with pytest.raises(ConfigError, match="does not offer") as caught:
        plan_for(EPIC, overrides)
    assert "force = true" in caught.value.hint
    forced = plan_for(EPIC, {**overrides, "force": True})
    assert forced.notes


def test_forcing_a_type_makes_the_outbox_treat_it_as_creatable() -> None:
    plan = plan_for(EPIC, {"activity": "Task", "force": True})
    assert plan.activity == "Task"
    assert any("force = true" in note for note in plan.notes)
    caps = capabilities_for(EPIC, plan)
    assert caps.can("Task", "create") and not EPIC.can("Task", "create")
    assert caps.conditional_create == frozenset() and caps.transaction is False
    # Turning features off in the file turns them off for the outbox too.
    off = capabilities_for(OPEN, plan_for(OPEN, {"transaction": False, "conditional_create": False}))
    assert off.transaction is False and off.conditional_create == frozenset()
    assert off.can("Claim", "create")


def test_claim_updates_follow_the_claim_type() -> None:
    assert plan_for(OPEN, None).can_update_claim is True
    assert plan_for(OPEN, {"can_update_claim": False}).can_update_claim is False
    assert plan_for(ORACLE, None).can_update_claim is False  # ChargeItem: create only
    with pytest.raises(ConfigError, match="can_update_claim"):
        plan_for(ORACLE, {"can_update_claim": True})
    with pytest.raises(ConfigError, match="can_update_claim"):
        plan_for(OPEN, {"claim": "none", "can_update_claim": True})


@pytest.fixture(scope="module")
def profile_caps() -> Iterator[dict[str, EhrCapabilities]]:
    """Each sandbox profile's capabilities, read from its /metadata over HTTP."""
    found: dict[str, EhrCapabilities] = {}
    for profile in ("open", "epic-like", "oracle-like"):
        def app(base: str, profile: str = profile):  # noqa: ANN202
            return create_app(SandboxConfig(base_url=base, fixtures_dir=smart_app.paths.data_path("fixtures"),
                                            open=True, profile=profile))

        with serve(app) as base:
            async def read(base: str = base) -> EhrCapabilities:
                async with httpx.AsyncClient(timeout=20) as http:
                    caps, why = await fetch_capabilities(http, f"{base}/fhir")
                    assert why is None
                    return caps
            found[profile] = asyncio.run(read())
    yield found


def test_plans_from_the_sandbox_profiles_metadata(profile_caps: dict[str, EhrCapabilities]) -> None:
    open_plan, epic, oracle = (plan_for(profile_caps[p], None) for p in ("open", "epic-like", "oracle-like"))
    assert (open_plan.claim, open_plan.minutes, open_plan.activity, open_plan.superbill, open_plan.consent) == (
        "Claim", "Observation", "Task", "DocumentReference", "Consent")
    assert open_plan.transaction and {"Claim", "Observation", "Task"} <= open_plan.conditional_create
    assert (epic.claim, epic.minutes, epic.activity, epic.superbill, epic.consent) == (
        None, "Observation", "Communication", "DocumentReference", None)
    assert not epic.transaction and epic.conditional_create == frozenset()
    assert (oracle.claim, oracle.minutes, oracle.activity, oracle.superbill, oracle.consent) == (
        "ChargeItem", "Observation", "Communication", "DocumentReference", None)
    assert not oracle.transaction and oracle.conditional_create == frozenset()
    # The admin's way out of Oracle's refusal of the minutes Observation.
    assert plan_for(profile_caps["oracle-like"], {"minutes": "DocumentReference"}).minutes == "DocumentReference"
    with pytest.raises(ConfigError, match=r"\[writeback\] claim"):
        plan_for(profile_caps["oracle-like"], {"claim": "Claim"})
