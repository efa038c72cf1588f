"""What lifts a reason, recorded where the EHR has no element for it: the page says what is on file and where the
EHR keeps it, and records the rest in the app (attributed, audited), which the rules then use."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html as html_lib
import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from smart_app.db import transaction
from smart_app.ledger.audit import EVIDENCE_RECORDED
from smart_app.ledger.coverage import verify
from smart_app.ledger.evidence import EvidenceRecord, with_evidence
from smart_app.ledger.records import AuditEventRow
from smart_app.rules import Discharge, evaluate
from smart_app.rules.loader import default_rule_set
from smart_app.services import build_context
from smart_app.statuses import EvidenceKind
from tests.rules.conftest import cond, day, patient
from tests.stack import Stack
from tests.test_capture_api import api, launch
from tests.test_consent_capture import page
from tests.test_patient_page import card

RULES = default_rule_set("medicare", 2026)
NURSE = "Practitioner/nurse"


def recorded(kind: EvidenceKind, subject: str = "", on: dt.date | None = None, flag: bool | None = None,
             n: int = 1) -> EvidenceRecord:
    return EvidenceRecord(f"ev-{n}", "org", "pat", kind, subject, on, flag, NURSE,
                          datetime(2026, 3, 20, 12, tzinfo=UTC), "")


def test_the_app_s_records_complete_the_ehr_s_facts_and_lift_the_reasons():
    stay = Discharge(day(6), None, day(12), "high", id="stay")
    facts = patient(discharges=(stay,), qmb=None, episodes=(), care_plans=())
    # TCM: two timely attempts instead of a contact, and the reconciliation date, make 99496 billable unwarned.
    before = evaluate(facts, [], RULES, month="2026-03")
    assert before.program("tcm").codes == ()
    after = evaluate(with_evidence(facts, [
        recorded(EvidenceKind.TCM_CONTACT_ATTEMPT, "Encounter/stay", day(9), n=1),
        recorded(EvidenceKind.TCM_CONTACT_ATTEMPT, "stay", day(10), n=2),
        recorded(EvidenceKind.TCM_MEDICATION_RECONCILIATION, "stay", day(12), n=3)]), [], RULES, month="2026-03")
    assert [c.code for c in after.program("tcm").codes] == ["99496"]
    assert not [w for w in after.program("tcm").warnings if "medication reconciliation" in w]

    merged = with_evidence(facts, [recorded(EvidenceKind.QMB_STATUS, flag=True),
                                   recorded(EvidenceKind.COCM_EPISODE_START, on=day(2)),
                                   recorded(EvidenceKind.CARE_PLAN, on=day(3)),
                                   recorded(EvidenceKind.CONDITION_HIGH_RISK, "htn", flag=True)])
    assert merged.qmb is True
    assert [(e.program, e.start) for e in merged.episodes] == [("cocm", day(2))]
    assert [(p.status, p.date) for p in merged.care_plans] == [("active", day(3))]
    assert [c.id for c in merged.conditions if c.high_risk] == ["dm", "htn"]
    # What the EHR says is kept: its reconciliation date and QMB status are not overwritten.
    ehr = dataclasses.replace(facts, qmb=False, discharges=(dataclasses.replace(
        stay, medication_reconciliation_date=day(11)),))
    kept = with_evidence(ehr, [recorded(EvidenceKind.QMB_STATUS, flag=True),
                               recorded(EvidenceKind.TCM_MEDICATION_RECONCILIATION, "stay", day(12))])
    assert kept.qmb is False and kept.discharges[0].medication_reconciliation_date == day(11)
    # The latest judgement about a condition wins.
    undone = with_evidence(patient(conditions=(cond("I10", "htn"),)), [
        recorded(EvidenceKind.CONDITION_HIGH_RISK, "htn", flag=True, n=1),
        recorded(EvidenceKind.CONDITION_HIGH_RISK, "htn", flag=False, n=2)])
    assert not undone.conditions[0].high_risk


def test_the_tcm_card_reads_the_procedure_and_records_contact_attempts(stack: Stack) -> None:
    headers, _ = launch(stack, "tcm-recent-discharge", user="pr-care-manager")
    # The TCM card itself offers the steps the EHR does not hold.
    html = html_lib.unescape(card(page(stack, headers), "Transitional care management"))
    assert 'data-api="/api/v1/evidence"' in html
    # The fixture's Procedure (read with patient/Procedure.rs) dates the reconciliation.
    assert re.search(r"medication reconciliation</strong>: done on \d{4}-\d{2}-\d{2} \(from the EHR\)", html), html
    assert "SNOMED CT 430193006" in html
    subject = re.search(r'name="kind" value="tcm-contact-attempt">\s*<input type="hidden" name="subject" '
                        r'value="([^"]+)"', html).group(1)

    today = dt.datetime.now(ZoneInfo(stack.organization.timezone)).date()
    future = api(stack, "POST", "/evidence", headers, json={
        "kind": "tcm-contact-attempt", "subject": subject, "date": (today + dt.timedelta(days=3)).isoformat()})
    assert future.status_code == 422 and "in the future" in future.json()["error"]["message"]
    unknown = api(stack, "POST", "/evidence", headers, json={"kind": "anything", "date": today.isoformat()})
    assert unknown.status_code == 422
    made = api(stack, "POST", "/evidence", headers, json={
        "kind": "tcm-contact-attempt", "subject": subject, "date": today.isoformat(), "note": "voicemail"})
    assert made.status_code == 201, made.text
    assert made.json()["message"] == "Recorded the attempt to contact the patient, with your name."
    assert f"attempts on {today.isoformat()}" in html_lib.unescape(card(page(stack, headers),
                                                                         "Transitional care management"))

    app = build_context(stack.settings)
    try:
        with transaction(app.sessions) as db:
            events = [(e.actor, json.loads(e.detail)) for e in db.scalars(
                select(AuditEventRow).where(AuditEventRow.action == EVIDENCE_RECORDED))]
            ours = made.json()["evidence"]["id"]
            events = [(actor, detail) for actor, detail in events if detail["evidence"] == ours]
        with app.sessions() as db:
            # The row is inside the audit chain: `audit verify` checks it like every ledger row.
            report = verify(db)
            assert report.ok, report.problems
    finally:
        app.engine.dispose()
    [(actor, detail)] = events
    assert actor == "Practitioner/pr-care-manager"
    assert (detail["kind"], detail["about"], detail["date"]) == ("tcm-contact-attempt", subject, today.isoformat())


def test_a_nurse_without_a_clinical_role_cannot_record_evidence(stack: Stack) -> None:
    headers, _ = launch(stack, "tcm-recent-discharge", user="pr-biller")
    refused = api(stack, "POST", "/evidence", headers, json={"kind": "qmb-status", "value": True})
    assert refused.status_code in (401, 403)


def test_the_page_offers_a_place_for_what_each_consented_program_lacks():
    from smart_app.rules import CarePlan, Consent
    from smart_app.web.evidence_offers import evidence_offers
    from smart_app.web.program_cards import program_cards

    def offers(**facts_changes):
        facts = patient(**facts_changes)
        cards = tuple(program_cards(evaluate(facts, [], RULES, month="2026-03")))
        return {o.kind: o for o in evidence_offers(facts, RULES, cards, [], day(20))}

    consents = {p: Consent(p, "active", day(1), id=p) for p in ("ccm", "pcm", "cocm", "apcm")}
    assert offers().keys() == set()  # the well-documented patient lacks nothing
    qmb = offers(qmb=None, consents=(consents["apcm"],))[EvidenceKind.QMB_STATUS]
    assert qmb.yes_no and not qmb.dated and "eligibility check" in qmb.where_in_ehr
    assert EvidenceKind.COCM_EPISODE_START in offers(episodes=(), consents=(consents["cocm"],))
    assert EvidenceKind.COCM_EPISODE_START not in offers(episodes=(), consents=(consents["ccm"],))
    high = offers(consents=(consents["pcm"],), conditions=(cond("I50.22", "hf"), cond("I10", "htn")))
    assert high[EvidenceKind.CONDITION_HIGH_RISK].choices == (("hf", "I50.22"), ("htn", "I10"))
    plan = offers(consents=(consents["ccm"],), care_plans=(CarePlan("draft", day(2)),))
    assert EvidenceKind.CARE_PLAN in plan and "CarePlan" in plan[EvidenceKind.CARE_PLAN].where_in_ehr
    # A recent discharge offers TCM's steps, shown in the TCM card when it is open.
    tcm = offers(discharges=(Discharge(day(6), day(9), day(12), "high", id="stay"),))
    assert tcm[EvidenceKind.TCM_CONTACT_ATTEMPT].subject == "stay"
    assert tcm[EvidenceKind.TCM_MEDICATION_RECONCILIATION].on_file == "no date on file"
    assert tcm[EvidenceKind.TCM_MEDICATION_RECONCILIATION].card == "tcm"
