"""Everything the in-chart page shows, gathered with one read of the EHR and one of the ledger."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from smart_app.billing.facts_source import coverage_reference, save_facts
from smart_app.db import transaction
from smart_app.ehr.care_team import care_manager, relative_reference, user_role
from smart_app.ehr.chart import ChartSummary, chart_summary
from smart_app.ehr.facts import facts_from_record
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.record import fetch_record
from smart_app.launch.organizations import Organization
from smart_app.launch.sessions import ActiveSession, settle_role
from smart_app.ledger.consents import ConsentRecord, consent_history
from smart_app.ledger.directory import remember_patient, save_month_status
from smart_app.ledger.facts_merge import time_entries, with_app_records
from smart_app.ledger.months import Month
from smart_app.ledger.queries import patient_month
from smart_app.ledger.scales import ScaleRecord, recordable_scales, scales_for
from smart_app.ledger.timers import running_timer
from smart_app.ledger.values import PatientMonth, Timer
from smart_app.ledger.vocabulary import Vocabulary, default_vocabulary
from smart_app.rules.conditions import CountedCondition, summarize
from smart_app.rules.decision import Decision
from smart_app.rules.evaluate import evaluate
from smart_app.rules.loader import rule_set_named
from smart_app.services import AppContext
from smart_app.statuses import WritebackStatus
from smart_app.web.consent_sync import send_pending_consents
from smart_app.web.orgs import load_organization, org_today
from smart_app.web.program_cards import ProgramCard, program_cards

# The evidence name of "a validated rating scale in the service month" in the rule files.
SCALE_EVIDENCE = "rating_scale_this_month"


@dataclass(frozen=True)
class PatientView:
    """The patient page's content for one session and month."""

    organization: Organization
    month: str
    today: dt.date
    days_left: int
    summary: ChartSummary
    decision: Decision
    cards: tuple[ProgramCard, ...]
    findings: tuple[str, ...]
    ledger: PatientMonth
    timer: Timer | None
    performer: str | None
    role: str
    vocabulary: Vocabulary
    programs: tuple[str, ...]
    consents: tuple[ConsentRecord, ...]
    consent_programs: tuple[str, ...]
    undetermined: tuple[CountedCondition, ...]
    # Rating scales recorded in the app this month, and those it can record (name, highest score), offered
    # when a program that needs one this month (BHI, CoCM) is relevant.
    scales: tuple[ScaleRecord, ...] = ()
    scale_choices: tuple[tuple[str, int], ...] = ()

    @property
    def active_consent_programs(self) -> set[str]:
        """Programs with an active consent captured in the app."""
        return {c.program for c in self.consents if c.active}


async def build_patient_view(app: AppContext, session: ActiveSession) -> PatientView:
    """Read the EHR once and the ledger once, evaluate the month, and keep the panel's snapshot."""
    org = load_organization(app, session)
    today = org_today(org)
    month = f"{today:%Y-%m}"
    rule_set = rule_set_named(org.rule_set)
    client = FhirClient(app.http, session.fhir_base, session.access_token)
    record = await fetch_record(client, session.capabilities, session.patient_id, month,
                                session.fhir_user, rule_set.scale_loinc_codes(), org.timezone)
    performer = relative_reference(session.fhir_user)
    role = user_role(record, session.fhir_user, org.billing_practitioner)
    if role != session.performer_role:
        settle_role(app.launch, session.id_hash, role)
    with transaction(app.sessions) as db:
        ledger = patient_month(db, org.id, session.patient_id, month)
        timer = running_timer(db, org.id, performer) if performer else None
        consents = consent_history(db, org.id, session.patient_id)
        scales = scales_for(db, org.id, session.patient_id)
    if any(c.writeback_status == WritebackStatus.PENDING for c in consents):
        await send_pending_consents(app, session, org, consents)
        with transaction(app.sessions) as db:
            consents = consent_history(db, org.id, session.patient_id)
    ehr_facts = facts_from_record(record, month)
    with transaction(app.sessions) as db:
        # Kept so the month-end rollup can run from the last read when the EHR is unavailable.
        save_facts(db, org.id, session.patient_id, month, ehr_facts, coverage_reference(record))
        facts = with_app_records(db, org.id, session.patient_id, org.timezone, ehr_facts, consents, scales)
    decision = evaluate(facts, time_entries(ledger.entries, org.timezone), rule_set, month=month)
    month_end = Month.of(today).last_day
    undetermined = summarize(facts, rule_set.conditions, month_end).undetermined()
    summary = chart_summary(record)
    cards = tuple(program_cards(decision))
    manager = care_manager(record)
    with transaction(app.sessions) as db:
        remember_patient(db, org.id, session.patient_id, name=summary.name, birth_date=summary.birth_date,
                         mrn=summary.mrn, care_manager=manager.reference if manager else None,
                         care_manager_name=manager.name if manager else None)
        save_month_status(db, org.id, session.patient_id, month,
                          eligible_programs=[c.key for c in cards if c.status in ("billable", "in-progress")],
                          decision=decision.to_json())
    time_programs = tuple(dict.fromkeys(
        rule_set.families[c.key].time_program for c in cards
        if c.relevant and rule_set.families[c.key].time_program))
    needs_scale = {fam.time_program for fam in rule_set.families.values()
                   if any(SCALE_EVIDENCE in code.evidence for code in fam.codes.values())}
    scale_choices = (tuple((name, highest) for name, (_, highest) in recordable_scales(rule_set).items())
                     if needs_scale & set(time_programs) else ())
    return PatientView(organization=org, month=month, today=today, days_left=Month.parse(month).days_left(today),
                       summary=summary, decision=decision, cards=cards,
                       findings=tuple(dict.fromkeys(summary.findings + facts.findings + decision.findings)),
                       ledger=ledger, timer=timer, performer=performer, role=role,
                       vocabulary=default_vocabulary(), programs=time_programs, consents=tuple(consents),
                       consent_programs=tuple(p for p in time_programs if p != "tcm"),
                       undetermined=tuple(undetermined), scales=tuple(r for r in scales if r.month == month),
                       scale_choices=scale_choices)
