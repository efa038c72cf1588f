"""Everything the in-chart page shows, gathered with one read of the EHR."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from smart_app.db import transaction
from smart_app.ehr.chart import ChartSummary, chart_summary
from smart_app.ehr.facts import facts_from_record
from smart_app.ehr.fhir_client import FhirClient
from smart_app.ehr.record import fetch_record
from smart_app.errors import SessionExpired
from smart_app.launch.organizations import Organization, get_organization
from smart_app.launch.sessions import ActiveSession
from smart_app.rules.decision import Decision
from smart_app.rules.evaluate import evaluate
from smart_app.rules.facts import TimeEntry
from smart_app.rules.loader import rule_set_named
from smart_app.web.context import AppContext
from smart_app.web.program_cards import ProgramCard, days_left, program_cards


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


def org_today(org: Organization) -> dt.date:
    """Today's date in the organization's timezone: months close at local midnight."""
    return dt.datetime.now(ZoneInfo(org.timezone)).date()


async def build_patient_view(app: AppContext, session: ActiveSession,
                             minutes: list[TimeEntry] | None = None) -> PatientView:
    """Read the EHR once, evaluate the month's rules, and shape the page."""
    with transaction(app.sessions) as db:
        org = get_organization(db, session.organization_id)
    if org is None:
        raise SessionExpired("This session's organization is no longer installed.",
                             "Ask the EHR administrator, then relaunch the app from the chart.")
    today = org_today(org)
    month = f"{today:%Y-%m}"
    rule_set = rule_set_named(org.rule_set)
    client = FhirClient(app.http, session.fhir_base, session.access_token)
    record = await fetch_record(client, session.capabilities, session.patient_id, month,
                                session.fhir_user, rule_set.scale_loinc_codes())
    facts = facts_from_record(record, month)
    decision = evaluate(facts, minutes or [], rule_set, month=month)
    summary = chart_summary(record)
    return PatientView(organization=org, month=month, today=today, days_left=days_left(today),
                       summary=summary, decision=decision, cards=tuple(program_cards(decision)),
                       findings=tuple(dict.fromkeys(summary.findings + facts.findings + decision.findings)))
