"""Everything the in-chart page shows, gathered with one read of the EHR and one of the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from smart_app.access.grants import people_with_time_role
from smart_app.access.roles import AppRole, Roles, TimeRole
from smart_app.billing.facts_source import coverage_reference, save_facts
from smart_app.billing.panel import snapshot_json
from smart_app.billing.practitioners import save_people
from smart_app.billing.pricing import organization_pricing
from smart_app.billing.scale_writeback import delivery_states
from smart_app.db import transaction, utcnow
from smart_app.ehr.care_team import care_manager
from smart_app.ehr.chart import ChartSummary, chart_summary
from smart_app.ehr.facts import facts_from_record
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.names import medicare_id, practitioner_details
from smart_app.ehr.record import fetch_record
from smart_app.launch.organizations import Organization
from smart_app.launch.sessions import settle_identity
from smart_app.ledger.care_plans import CARE_PLAN_PROGRAMS, CarePlanVersion, in_force, plan_versions
from smart_app.ledger.consents import ConsentRecord, consent_history
from smart_app.ledger.directory import patient_name, remember_patient, save_month_status
from smart_app.ledger.enrollment import ProgramEnrollment, read_history
from smart_app.ledger.evidence import evidence_history
from smart_app.ledger.facts_merge import time_entries, with_app_records
from smart_app.ledger.months import Month
from smart_app.ledger.queries import month_fingerprint, patient_month, recent_choices
from smart_app.ledger.scales import ScaleRecord, recordable_scales, scales_for
from smart_app.ledger.timers import running_timer
from smart_app.ledger.values import PatientMonth, Timer
from smart_app.ledger.vocabulary import Vocabulary, default_vocabulary
from smart_app.rules.conditions import CountedCondition, summarize
from smart_app.rules.decision import Decision
from smart_app.rules.evaluate import evaluate
from smart_app.rules.loader import rule_set_named
from smart_app.rules.questionnaires import for_rule_set
from smart_app.rules.rates import CostShare, monthly_cost_share
from smart_app.services import AppContext
from smart_app.statuses import WritebackStatus
from smart_app.web.authorization import Principal, administrator_names, roles_of
from smart_app.web.capture_defaults import CaptureDefaults, capture_defaults
from smart_app.web.consent_list import (
    ListedConsent,
    enrollment_on_file,
    listed_consents,
    programs_to_offer,
    programs_without_consent,
)
from smart_app.web.consent_sync import send_pending_consents
from smart_app.web.evidence_offers import Offer, evidence_offers
from smart_app.web.orgs import org_today
from smart_app.web.program_cards import ProgramCard, program_cards
from smart_app.web.scale_view import ScaleSection, scale_section

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
    # The person as of this read of the EHR (their name and roles may have just been learnt).
    who: Principal
    roles: Roles
    # Why this person cannot record time here, or None when they can.
    cannot_record: str | None
    vocabulary: Vocabulary
    programs: tuple[str, ...]
    consents: tuple[ConsentRecord, ...]
    consent_programs: tuple[str, ...]
    undetermined: tuple[CountedCondition, ...]
    # Rating scales recorded in the app this month, and those it can record (name, highest score), offered
    # when a program that needs one this month (BHI, CoCM) is relevant.
    scales: tuple[ScaleRecord, ...] = ()
    scale_choices: tuple[tuple[str, int], ...] = ()
    # The patient's coinsurance for a month of each consent program, to say when consent is taken, and what
    # estimate it is 20% of.
    cost_shares: tuple[CostShare, ...] = ()
    cost_label: str = ""
    # Where a reason says what would lift it: what is on file, where the EHR keeps it, and the form to record it.
    offers: tuple[Offer, ...] = ()
    # The program and activity the capture forms offer first (this person's last for this patient).
    defaults: CaptureDefaults = CaptureDefaults(programs=(), program=None)
    # Every consent on file (the EHR's and the app's), and the programs a new consent may be recorded for.
    listed_consents: tuple[ListedConsent, ...] = ()
    consent_missing: tuple[str, ...] = ()
    # The running timer's patient, named for the banner (None: the directory has not seen them).
    timer_patient_name: str | None = None
    # The care plan established in the app and in force today, shown where a program needing one applies.
    care_plan: CarePlanVersion | None = None
    # The rating-scale section: item-by-item forms, the total-only form, the safety alert, each scale's trend.
    scale_section: ScaleSection | None = None
    # Each consent program's enrollment status, and the programs the consent form offers by default.
    enrollment: tuple[ProgramEnrollment, ...] = ()
    consent_offered: tuple[str, ...] = ()

    @property
    def role(self) -> str:
        """The person's time role as pages name it."""
        return self.roles.time_role.value if self.roles.time_role else ""

    @property
    def is_billing_practitioner(self) -> bool:
        """Whether this person may correct others' entries (the billing practitioner)."""
        return self.roles.time_role is TimeRole.BILLING_PRACTITIONER

    @property
    def care_plan_shown(self) -> bool:
        """Whether a program that needs a comprehensive care plan applies (CCM, PCM, APCM)."""
        return any(c.key in CARE_PLAN_PROGRAMS and c.relevant for c in self.cards)

    @property
    def active_consent_programs(self) -> set[str]:
        """Programs with an active consent captured in the app."""
        return {c.program for c in self.consents if c.active}


def _cannot_record(who: Principal, roles: Roles) -> str | None:
    if not roles.has_any((AppRole.CLINICIAN, AppRole.CARE_MANAGER)):
        return (f"You are signed in as {who.name} ({roles.label}); recording time needs the clinician or care "
                f"manager role. {who.who_grants()}")
    if roles.time_role is None:
        return (f"The app does not know your role on the care team, so minutes you record could not be counted. "
                f"{who.who_grants()}")
    if not (who.user or "").startswith(("Practitioner/", "PractitionerRole/")):
        return "The EHR did not say which practitioner you are, so time cannot be attributed to you."
    return None


async def build_patient_view(app: AppContext, who: Principal) -> PatientView:
    """Read the EHR once and the ledger once, evaluate the month, and keep the panel's snapshot."""
    session, org = who.session, who.organization
    patient_id = who.patient_id
    today = org_today(org)
    month = f"{today:%Y-%m}"
    rule_set = rule_set_named(org.rule_set)
    client = FhirClient(app.http, session.fhir_base, session.access_token)
    record = await fetch_record(client, session.capabilities, patient_id, month,
                                session.fhir_user, rule_set.scale_loinc_codes(), org.timezone)
    identity = record.identity(session.fhir_user)
    performer = who.user

    def read_ledger() -> tuple[Principal, PatientMonth, Timer | None, list[ConsentRecord], list[ScaleRecord],
                               set[str], list[tuple[str, str]], str | None, tuple[dict[str, str], set[str]]]:
        # What the EHR says of the user may have changed their roles: settle it and decide them again.
        fresh = settle_identity(app.launch, session, identity.name, identity.codes)
        with transaction(app.sessions) as db:
            now = dataclasses.replace(who, session=fresh, roles=roles_of(db, org, fresh))
            if _cannot_record(now, now.roles):
                now = dataclasses.replace(now, administrators=administrator_names(db, org))
            ledger = patient_month(db, org.id, patient_id, month)
            timer = running_timer(db, org.id, performer) if performer else None
            consents = consent_history(db, org.id, patient_id)
            scales = scales_for(db, org.id, patient_id)
            managers = people_with_time_role(db, org.id, TimeRole.CARE_MANAGER, org.role_assignments)
            recent = recent_choices(db, org.id, patient_id, performer) if performer else []
            timer_name = patient_name(db, org.id, timer.patient_id) if timer else None
            deliveries = delivery_states(db, org.id, [s.id for s in scales])
        return now, ledger, timer, consents, scales, managers, recent, timer_name, deliveries

    who, ledger, timer, consents, scales, managers, recent, timer_name, deliveries = await run_in_threadpool(
        read_ledger)
    roles = who.roles
    if any(c.writeback_status == WritebackStatus.PENDING for c in consents):
        await send_pending_consents(app, session, org, consents)

        def reread() -> list[ConsentRecord]:
            with transaction(app.sessions) as db:
                return consent_history(db, org.id, patient_id)

        consents = await run_in_threadpool(reread)
    ehr_facts = facts_from_record(record, month)
    summary = chart_summary(record)
    manager = care_manager(record, org.role_map, managers)

    def evaluate_and_keep() -> tuple[Decision, tuple[ProgramCard, ...], tuple[CountedCondition, ...], tuple[str, ...],
                                     tuple[Offer, ...], CarePlanVersion | None]:
        with transaction(app.sessions) as db:
            # Kept so the month-end rollup can run from the last read when the EHR is unavailable.
            save_facts(db, org.id, patient_id, month, ehr_facts, coverage_reference(record),
                       mbi=medicare_id(record.patient, record.get("coverage")))
            if identity.reference and identity.reference.startswith("Practitioner/") and record.user:
                # The user's name, credentials and NPI, for the claims that will name them.
                save_people(db, org.id, {identity.reference: practitioner_details(identity.reference, record.user)},
                            utcnow())
            facts = with_app_records(db, org.id, patient_id, org.timezone, ehr_facts, consents, scales)
            recorded = evidence_history(db, org.id, patient_id)
            plan = in_force(plan_versions(db, org.id, patient_id), today)
        decision = evaluate(facts, time_entries(ledger.entries, org.timezone), rule_set, month=month)
        month_end = Month.of(today).last_day
        undetermined = tuple(summarize(facts, rule_set.conditions, month_end).undetermined())
        cards = tuple(program_cards(decision, rule_set))
        offers = evidence_offers(facts, rule_set, cards, recorded, today)
        with transaction(app.sessions) as db:
            remember_patient(db, org.id, patient_id, name=summary.name, birth_date=summary.birth_date,
                             mrn=summary.mrn, care_manager=manager.reference if manager else None,
                             care_manager_name=manager.name if manager else None)
            save_month_status(db, org.id, patient_id, month,
                              eligible_programs=[c.key for c in cards if c.status in ("billable", "in-progress")],
                              decision=decision.to_json(),
                              panel=snapshot_json(decision, rule_set, month_fingerprint(ledger), ehr_facts.consents))
        return decision, cards, undetermined, facts.findings, offers, plan

    decision, cards, undetermined, fact_findings, offers, plan = await run_in_threadpool(evaluate_and_keep)
    time_programs = tuple(dict.fromkeys(
        rule_set.families[c.key].time_program for c in cards
        if c.relevant and rule_set.families[c.key].time_program))
    needs_scale = {fam.time_program for fam in rule_set.families.values()
                   if any(SCALE_EVIDENCE in code.evidence for code in fam.codes.values())}
    scale_choices = (tuple((name, highest) for name, (_, highest) in recordable_scales(rule_set).items())
                     if needs_scale & set(time_programs) else ())
    section = scale_section(rule_set, for_rule_set(rule_set), scale_choices, scales, ehr_facts.rating_scales,
                            deliveries[0], deliveries[1], today) if scale_choices or scales else None
    consent_programs = tuple(p for p in time_programs if p != "tcm")
    on_file = listed_consents(record.get("consents"), consents)
    enrollment = enrollment_on_file(consent_programs, on_file, consents,
                                    await run_in_threadpool(read_history, app.sessions, org.id, patient_id))
    missing = tuple(programs_without_consent(consent_programs, on_file))
    defaults = capture_defaults(time_programs, {f.time_program for f in rule_set.families.values() if f.time_based},
                                recent)
    pricing = organization_pricing(org)
    cost_shares = tuple(share for p in consent_programs if (share := monthly_cost_share(pricing, p)))
    return PatientView(organization=org, month=month, today=today, days_left=Month.parse(month).days_left(today),
                       summary=summary, decision=decision, cards=cards,
                       findings=tuple(dict.fromkeys(summary.findings + fact_findings + decision.findings)),
                       ledger=ledger, timer=timer, performer=performer, who=who, roles=roles,
                       cannot_record=_cannot_record(who, roles),
                       vocabulary=default_vocabulary(), programs=time_programs, consents=tuple(consents),
                       consent_programs=consent_programs,
                       undetermined=undetermined, scales=tuple(r for r in scales if r.month == month),
                       scale_choices=scale_choices, cost_shares=cost_shares, cost_label=pricing.label,
                       offers=offers, defaults=defaults, listed_consents=on_file,
                       consent_missing=missing, enrollment=enrollment,
                       consent_offered=tuple(programs_to_offer(missing, enrollment)),
                       timer_patient_name=summary.name if timer and timer.patient_id == patient_id else timer_name,
                       care_plan=plan, scale_section=section)
