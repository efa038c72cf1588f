"""The claim's audit facts, pure: diagnosis pointers (TCM included), dates of service never after today,
people by name, credentials and NPI, the patient's MBI, and the itemized time log that reconciles."""

from __future__ import annotations

import dataclasses
import datetime as dt
from datetime import UTC, datetime

from smart_app.billing.fhir_resources import charge_item, claim_resource, time_log_csv
from smart_app.billing.proposal import PatientInfo, approval_blockers, propose_claim
from smart_app.billing.superbill import reconciliation
from smart_app.billing.values import ProposedClaim
from smart_app.ehr.names import PractitionerDetails, credentials, medicare_id, practitioner_details
from smart_app.launch.organizations import Organization
from smart_app.ledger.facts_merge import time_entries
from smart_app.rules import Consent, Discharge, evaluate
from smart_app.rules.loader import default_rule_set
from tests.billing.claims import entry
from tests.rules.conftest import cond, day, patient

ORG = Organization(id="org-1", name="Clinic", issuer="http://127.0.0.1:9/fhir", client_id="app", timezone="UTC",
                   billing_practitioner="Practitioner/md", extra={"service_date": "threshold-met"})
RULES = default_rule_set("medicare", 2026)
PEOPLE = {"Practitioner/md": PractitionerDetails("Practitioner/md", "Dr. Ada Okafor", "MD", "1234567893"),
          "Practitioner/nurse": PractitionerDetails("Practitioner/nurse", "Rita Nurse", "RN", "1234567919")}


def at(d: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, d, hour, 0, tzinfo=UTC)


def tcm_patient(f2f: dt.date):
    return patient(consents=(), discharges=(Discharge(day(6), day(9), f2f, "high", id="Encounter/stay",
                                                      medication_reconciliation_date=f2f),),
                   conditions=(cond("I50.23", "hf"), cond("E11.9", "dm"), cond("J06.9", "uri",
                                                                              clinical_status="resolved")))


def propose(facts, entries=(), today=None):
    decision = evaluate(facts, time_entries(tuple(entries), "UTC"), RULES, month="2026-03")
    return propose_claim(decision, facts, tuple(entries), ORG, "pat-1", PatientInfo("Ada", mbi="1EG4TE5MK73"),
                         today=today, people=PEOPLE)


def test_tcm_points_every_line_at_the_active_problems_and_is_dated_on_the_visit():
    claim = propose(tcm_patient(day(12)), today=day(31))
    assert [line.code for line in claim.lines] == ["99496"]
    assert claim.lines[0].service_date == day(12)
    assert [(d.code, d.programs) for d in claim.diagnoses] == [("I50.23", ("tcm",)), ("E11.9", ("tcm",))]
    resource = claim_resource(claim, created=day(31), observation_refs={})
    assert resource["item"][0]["diagnosisSequence"] == [1, 2]
    assert resource["patient"]["identifier"] == {"system": "http://hl7.org/fhir/sid/us-mbi", "value": "1EG4TE5MK73"}
    assert resource["provider"] == {"reference": "Practitioner/md", "display": "Dr. Ada Okafor, MD",
                                    "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}}
    assert not [w for w in claim.warnings if "no diagnosis" in w]


def test_no_date_of_service_after_today():
    early = propose(tcm_patient(day(12)), today=day(10))
    assert early.lines[0].service_date == day(10)
    assert "TCM: the face-to-face visit (2026-03-12) is still to come; the claim may be sent only once it took place" \
        in early.warnings
    ccm = dataclasses.replace(patient(), discharges=())
    month_end = dataclasses.replace(ORG, extra={})
    decision = evaluate(ccm, time_entries((entry(start=at(3), minutes=25),), "UTC"), RULES, month="2026-03")
    claim = propose_claim(decision, ccm, (entry(start=at(3), minutes=25),), month_end, "pat-1", PatientInfo(),
                          today=day(6))
    assert [line.service_date for line in claim.lines] == [day(6)]


def test_a_tcm_claim_cannot_be_approved_before_its_visit_and_the_next_rollup_lifts_that():
    early = propose(tcm_patient(day(12)), today=day(10))
    assert early.not_before == day(12)
    assert ProposedClaim.from_json(early.to_json()).not_before == day(12)
    assert [b for b in approval_blockers(early) if "2026-03-12 is still to come" in b]
    after = propose(tcm_patient(day(12)), today=day(13))
    assert after.not_before is None and approval_blockers(after) == ()


def test_each_line_points_only_at_its_own_programs_diagnoses():
    facts = dataclasses.replace(tcm_patient(day(12)), consents=(Consent("ccm", "active", day(1), id="c"),))
    claim = propose(facts, [entry(id="e-1", start=at(3), minutes=25)], today=day(31))
    resource = claim_resource(claim, created=day(31), observation_refs={})
    pointers = {item["productOrService"]["coding"][0]["code"]: item["diagnosisSequence"] for item in resource["item"]}
    named = {n: d.code for n, d in enumerate(claim.diagnoses, start=1)}
    assert {named[n] for n in pointers["99490"]} <= {"I50.23", "E11.9"}
    assert pointers["99496"] and all(n in named for n in pointers["99496"])
    # Where the EHR takes ChargeItems instead: the same per-line diagnoses, and people with their NPI.
    tcm_line = next(line for line in claim.lines if line.program == "tcm")
    item = charge_item(claim, tcm_line)
    assert [r["coding"][0]["code"] for r in item["reason"]] == [d.code for d in claim.diagnoses if "tcm" in d.programs]
    assert item["performer"][0]["actor"]["identifier"]["value"] == "1234567893"


def test_the_time_log_says_where_every_minute_went_and_reconciles():
    facts = dataclasses.replace(patient(), consents=(Consent("ccm", "active", day(10), id="c"),), discharges=())
    entries = [entry(id="e-1", start=at(5), minutes=10, note="before consent"),
               entry(id="e-2", start=at(12), minutes=15, performer="Practitioner/nurse"),
               entry(id="e-3", start=at(14), minutes=20, performer="Practitioner/nurse", activity="care-plan-update"),
               entry(id="e-4", start=at(15), minutes=5, role="psychiatric-consultant")]
    claim = propose(facts, entries, today=day(31))
    assert [(line.code, line.units) for line in claim.lines] == [("99490", 1)]
    log = {item.entry_id: item for item in claim.time_log}
    assert log["e-1"].counted == () and log["e-1"].why_not == "dated before consent (2026-03-10)"
    assert log["e-2"].counted == (("99490", 15),) and log["e-2"].not_counted == 0
    assert log["e-3"].counted == (("99490", 5),) and log["e-3"].not_counted == 15
    assert log["e-3"].why_not.startswith("beyond the units billed")
    assert log["e-4"].why_not == "psychiatric-consultant time does not count toward these codes"
    assert (log["e-2"].start, log["e-2"].end, log["e-2"].performer_name) == ("10:00", "10:15", "Rita Nurse")
    assert reconciliation(claim) == (
        "50 minutes logged in 4 entries; 20 count toward the codes billed.",
        "10 minutes not billed: dated before consent (2026-03-10).",
        "15 minutes not billed: beyond the units billed (the cap, or short of the next unit).",
        "5 minutes not billed: psychiatric-consultant time does not count toward these codes.",
        "Minutes by program are those documented after consent; minutes by person are those that count toward "
        "the codes.")
    # Only the counted minutes back the people on the claim.
    assert [(p.reference, p.minutes, p.npi) for p in claim.performers if p.minutes] == [
        ("Practitioner/nurse", 20, "1234567919")]
    csv_text = time_log_csv(claim)
    assert csv_text.splitlines()[0].startswith("date,start,end,minutes,program,activity,person")
    assert "2026-03-14,10:00,10:20,20,ccm,care-plan-update,Rita Nurse,Practitioner/nurse" in csv_text
    # The claim's JSON form keeps the log.
    again = type(claim).from_json(claim.to_json())
    assert again.time_log == claim.time_log and again.diagnoses == claim.diagnoses


def test_a_practitioner_without_an_npi_is_named_as_a_warning():
    facts = dataclasses.replace(patient(), discharges=())
    claim = propose(facts, [entry(id="e-1", start=at(3), minutes=22, performer="Practitioner/unknown")],
                    today=day(31))
    assert "no NPI on file in the EHR for Practitioner/unknown (clinical-staff)" in claim.warnings


def test_the_mbi_from_patient_coverage_identifier_or_a_medicare_subscriber_id():
    mbi = {"system": "http://hl7.org/fhir/sid/us-mbi", "value": "1EG4TE5MK73"}
    medicare = {"status": "active", "type": {"text": "Medicare Part B"}, "subscriberId": "9PT3DP4YA62"}
    assert medicare_id({"identifier": [mbi]}, []) == "1EG4TE5MK73"
    assert medicare_id({}, [{"status": "active", "identifier": [mbi]}]) == "1EG4TE5MK73"
    assert medicare_id({}, [medicare]) == "9PT3DP4YA62"
    assert medicare_id({}, [{**medicare, "type": {"text": "Acme commercial PPO"}}]) is None
    assert medicare_id({}, [{**medicare, "status": "cancelled"}]) is None
    sopt = {"status": "active", "type": {"coding": [{"system": "https://nahdo.org/sopt", "code": "121"}]},
            "subscriberId": "X"}
    assert medicare_id({}, [sopt]) == "X"


def test_credentials_from_the_name_suffix_or_the_qualifications():
    md = {"name": [{"use": "official", "given": ["Ada"], "family": "Okafor", "prefix": ["Dr."], "suffix": ["MD"]}],
          "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}]}
    assert practitioner_details("Practitioner/md", md) == PractitionerDetails(
        "Practitioner/md", "Dr. Ada Okafor", "MD", "1234567893")
    assert credentials({"qualification": [{"code": {"text": "Licensed Clinical Social Worker (LCSW)"}}]}) == \
        "Licensed Clinical Social Worker (LCSW)"
    assert credentials({"qualification": [{"code": {"coding": [{"code": "RN"}]}}]}) == "RN"
    assert practitioner_details("Practitioner/x", None) == PractitionerDetails("Practitioner/x")


def test_a_medication_reconciliation_procedure_after_the_discharge_dates_the_step():
    from smart_app.ehr.facts import map_discharges

    stay = {"id": "stay", "status": "finished", "class": {"code": "IMP"},
            "period": {"start": "2026-03-01T10:00:00Z", "end": "2026-03-06T10:00:00Z"}}
    visit = {"id": "visit", "status": "finished", "class": {"code": "AMB"}, "period": {"start": "2026-03-12T10:00:00Z"}}

    def procedure(when: str, code: str = "430193006", status: str = "completed") -> dict:
        return {"resourceType": "Procedure", "status": status, "performedDateTime": when,
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]}}

    found = map_discharges([stay, visit], [], [procedure("2026-02-01T09:00:00Z"), procedure("2026-03-11T09:00:00Z",
                                                                                            status="not-done"),
                                               procedure("2026-03-12T09:10:00Z", code="80146002"),
                                               procedure("2026-03-12T09:15:00Z")])
    assert [d.medication_reconciliation_date for d in found] == [day(12)]
    assert [d.medication_reconciliation_date for d in map_discharges([stay, visit], [])] == [None]


def test_the_superbill_html_and_csv_carry_the_log_and_explain_the_difference():
    import csv
    import io

    from smart_app.billing.superbill import superbill_csv, superbill_html
    from smart_app.rules.rates import Pricing

    facts = dataclasses.replace(patient(), consents=(Consent("ccm", "active", day(10), id="c"),), discharges=())
    entries = [entry(id="e-1", start=at(5), minutes=10), entry(id="e-2", start=at(12), minutes=25,
                                                               performer="Practitioner/nurse", note="=1+1")]
    claim = propose(facts, entries, today=day(31))
    pricing = Pricing(RULES)
    html = superbill_html([claim], organization_name="Clinic", month="2026-03",
                          generated=datetime(2026, 4, 1, tzinfo=UTC), pricing=pricing)
    for fact in ("Itemized time log", "1EG4TE5MK73", "Rita Nurse, RN, NPI 1234567919", "99490: 20",
                 "10 minutes not billed: dated before consent (2026-03-10).", "By person (counted toward the codes)"):
        assert fact in html, fact
    rows = list(csv.DictReader(io.StringIO(superbill_csv([claim], pricing=pricing))))
    assert [r["row"] for r in rows] == ["code", "time", "time"]
    assert rows[0]["mbi"] == "1EG4TE5MK73" and rows[0]["code"] == "99490"
    logged = rows[2]
    assert (logged["entry_date"], logged["start"], logged["end"], logged["entry_minutes"]) == (
        "2026-03-12", "10:00", "10:25", "25")
    assert (logged["person"], logged["counts_toward"], logged["not_counted"]) == ("Rita Nurse", "99490:20", "5")
    assert logged["note"] == "'=1+1"
    assert rows[1]["why_not_counted"] == "dated before consent (2026-03-10)"


def test_the_log_s_minutes_per_code_add_up_to_each_line_s_minutes():
    facts = dataclasses.replace(patient(), discharges=())
    for lengths in ((25,), (12, 13, 30), (5, 50, 7, 3), (90,), (20, 20, 20, 20)):
        entries = [entry(id=f"e-{n}", start=at(3 + n), minutes=m) for n, m in enumerate(lengths)]
        claim = propose(facts, entries, today=day(31))
        per_code: dict[str, int] = {}
        for item in claim.time_log:
            assert sum(m for _, m in item.counted) + item.not_counted == item.minutes
            for code, mins in item.counted:
                per_code[code] = per_code.get(code, 0) + mins
        assert per_code == {line.code: line.minutes for line in claim.lines if line.minutes}, lengths
