"""A care-plan draft seeded from the chart (pure): the template and problems, then the active medication orders, the
allergies, who on the care team is responsible, the specialists and visits to coordinate with, each line saying
where it came from; what the EHR did not give is a note, never "none"."""

from __future__ import annotations

from datetime import date

from smart_app.access.roles import AppRole, CodeSource, RoleMapping, TimeRole
from smart_app.ehr.care_plan_sources import allergy_lines, chart_facts, medication_lines, team_lines, visit_lines
from smart_app.ledger.care_plan_seed import ChartFacts, ChartLine, TeamMember, seed_from_chart
from smart_app.ledger.care_plans import from_form, load_templates, parse_content, seed, to_form
from smart_app.rules.facts import Condition

TODAY = date(2026, 12, 6)
DIABETES = Condition("E11.9", "http://hl7.org/fhir/sid/icd-10-cm", "active", onset=date(2019, 4, 1), id="c1",
                     display="Type 2 diabetes mellitus without complications")
METFORMIN = ChartLine("Metformin 500 mg tablet: 1 tablet twice daily", "MedicationRequest", date(2026, 3, 2))
CHART = ChartFacts(
    conditions=(DIABETES,), medications=(METFORMIN,),
    allergies=(ChartLine("Penicillin (Hives; high criticality)", "AllergyIntolerance", date(2026, 3, 10)),),
    team=(TeamMember("Maren Lindqvist, RN", "Registered nurse, Care manager", "care manager"),
          TeamMember("Adaeze Okafor, MD", "Physician", "billing practitioner"),
          TeamMember("Priya Raman, MD", "Ophthalmologist")),
    visits=(ChartLine("2026-06-18 Eye examination (Priya Raman, MD)", "Encounter", date(2026, 6, 18)),))


def test_the_draft_carries_the_charts_medications_allergies_team_and_visits_with_their_sources() -> None:
    plan = seed_from_chart(load_templates()["diabetes"], CHART, TODAY)
    content = plan.content
    assert content.problems == (DIABETES.display,)
    assert "Metformin 500 mg tablet: 1 tablet twice daily" in content.medication_management
    assert content.medication_management.startswith("Reconcile medicines")  # the template's text is kept first
    assert content.allergies == "Penicillin (Hives; high criticality)"
    responsible = {i.responsible for i in content.interventions}
    assert "care manager: Maren Lindqvist, RN" in responsible
    assert "billing practitioner: Adaeze Okafor, MD" in responsible
    assert "Priya Raman, MD (Ophthalmologist)" in content.coordination
    assert "2026-06-18 Eye examination" in content.coordination
    sources = {(line.element, line.source) for line in plan.lines}
    assert ("medication_management", "from the EHR: MedicationRequest, 2026-03-02") in sources
    assert ("allergies", "from the EHR: AllergyIntolerance, 2026-03-10") in sources
    assert ("problems", "from the EHR: Condition, 2019-04-01") in sources
    assert ("coordination", "from the EHR: Encounter, 2026-06-18") in sources
    assert ("interventions", "from the EHR: CareTeam") in sources
    # The seeded draft is a valid plan, and survives the editor's round trip unchanged.
    assert parse_content(from_form(to_form(content))) == content


def test_what_the_ehr_did_not_give_is_a_note_and_never_no_allergies() -> None:
    unread = ChartFacts(conditions=(DIABETES,), medications=None, allergies=None, team=None, visits=None,
                        unread=("Allergies (AllergyIntolerance) could not be read: the EHR answered 403.",))
    plan = seed_from_chart(load_templates()["diabetes"], unread, TODAY)
    assert plan.content.allergies == "" and plan.notes == unread.unread
    assert plan.content == seed(load_templates()["diabetes"], [DIABETES], TODAY)  # the template and problems only
    none_listed = seed_from_chart(load_templates()["diabetes"], ChartFacts(conditions=(DIABETES,)), TODAY)
    assert none_listed.content.allergies.startswith("None recorded in the EHR")


def test_a_version_saved_before_allergies_existed_still_reads() -> None:
    old = seed(load_templates()["copd"], [], TODAY).to_json()
    del old["allergies"]
    assert parse_content(old).allergies == ""


def test_the_fhir_resources_become_chart_lines() -> None:
    meds = medication_lines([
        {"resourceType": "MedicationRequest", "status": "active", "intent": "order", "authoredOn": "2026-03-02",
         "medicationCodeableConcept": {"text": "Lisinopril 10 mg tablet"},
         "dosageInstruction": [{"text": "1 tablet daily"}]},
        {"resourceType": "MedicationRequest", "status": "stopped", "intent": "order",
         "medicationCodeableConcept": {"text": "Glipizide"}},
        {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
         "medicationReference": {"reference": "Medication/m1", "display": "Atorvastatin 20 mg"}},
    ])
    assert [m.text for m in meds] == ["Lisinopril 10 mg tablet: 1 tablet daily", "Atorvastatin 20 mg"]
    allergies = allergy_lines([
        {"code": {"coding": [{"display": "Sulfa drugs"}]}, "reaction": [{"manifestation": [{"text": "Rash"}]}]},
        {"code": {"text": "Latex"}, "verificationStatus": {"coding": [{"code": "refuted"}]}},
        {"code": {"text": "Shellfish"}, "clinicalStatus": {"coding": [{"code": "resolved"}]}},
    ])
    assert [a.text for a in allergies] == ["Sulfa drugs (Rash)"]
    mapping = RoleMapping(CodeSource.CARE_TEAM, "urn:team", "2", frozenset({AppRole.CARE_MANAGER}),
                          TimeRole.CARE_MANAGER)
    team = team_lines([{"status": "active", "participant": [
        {"role": [{"coding": [{"system": "urn:team", "code": "2", "display": "Care manager"}]}],
         "member": {"reference": "Practitioner/cm", "display": "Maren Lindqvist, RN"}},
        {"member": {"reference": "Practitioner/md", "display": "Adaeze Okafor, MD"}},
        {"role": [{"coding": [{"system": "urn:team", "code": "2"}]}],
         "member": {"reference": "Practitioner/rn", "display": "Tomas Delgado, LPN"}},
        {"member": {"reference": "Organization/home-health", "display": "Valley Home Health"}},
        {"member": {"reference": "Patient/p1", "display": "The patient"}},
    ]}, {"status": "inactive", "participant": [{"member": {"reference": "Practitioner/old"}}]}],
        # A grant in the app wins over the care-team code (as for roles); the organization file names the billing
        # practitioner.
        [mapping], {"Practitioner/rn": "clinical staff"}, billing_practitioner="Practitioner/md")
    assert team == (TeamMember("Maren Lindqvist, RN", "Care manager", "care manager"),
                    TeamMember("Adaeze Okafor, MD", "", "billing practitioner"),
                    TeamMember("Tomas Delgado, LPN", "2", "clinical staff"),
                    TeamMember("Valley Home Health", "", None))
    visits = visit_lines([
        {"status": "finished", "period": {"start": "2026-06-18T14:00:00-04:00"}, "type": [{"text": "Eye exam"}],
         "serviceProvider": {"display": "Eye Associates"}},
        {"status": "finished", "period": {"start": "2025-11-01T09:00:00-05:00"}, "type": [{"text": "Too old"}]},
        {"status": "cancelled", "period": {"start": "2026-10-01T09:00:00-04:00"}, "type": [{"text": "Missed"}]},
    ], TODAY)
    assert [v.text for v in visits] == ["2026-06-18 Eye exam (Eye Associates)"]
    facts = chart_facts({"medications": [], "care_teams": [], "encounters": []},
                        {"allergies": "the EHR answered 403 Forbidden"}, [DIABETES], TODAY)
    assert facts.allergies is None and facts.medications == ()
    assert facts.unread == ("Allergies (AllergyIntolerance) could not be read, so the draft has nothing from it: "
                            "the EHR answered 403 Forbidden.",)
