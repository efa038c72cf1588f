"""The care-team panel: enrolment, thresholds and statuses, sorting, filters, estimates, CSV, isolation."""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from smart_app.billing.facts_source import save_facts
from smart_app.billing.panel import (
    Panel,
    PanelRow,
    csv_header,
    panel_csv,
    panel_rows,
    safe_cell,
)
from smart_app.db import transaction
from smart_app.launch.organizations import Organization, save_organizations
from smart_app.ledger.entries import amend_entry, record_entry, void_entry
from smart_app.ledger.errors import InvalidEntry
from smart_app.ledger.months import Month
from smart_app.ledger.queries import month_fingerprint, patient_month
from smart_app.ledger.records import MonthStatusRow, PatientRow
from smart_app.ledger.values import Entry
from smart_app.rules.decision import Decision
from smart_app.rules.facts import Condition, Consent, PatientFacts
from smart_app.rules.loader import default_rule_set
from smart_app.rules.rates import Locality, Pricing, RateSettings, estimate_label
from smart_app.rules.standing import Standing
from tests.ledger.conftest import ICD, NOW, ORG, TZ, documented, entry

RULES = default_rule_set("medicare", 2026)
ESTIMATE_LABEL = estimate_label(RULES)
CSV_HEADER = csv_header(ESTIMATE_LABEL)
MONTH = "2026-11"
TODAY = date(2026, 11, 20)
OTHER_ORG = "org-other"
_performers = itertools.count()


def add(factory: sessionmaker[Session], patient: str, minutes: int, *, program: str = "ccm",
        role: str = "clinical-staff", org: str = ORG, facts: bool = True) -> Entry:
    """Record time through the ledger (with the patient documented and consenting to the program, unless
    `facts` is False); each call has its own performer so nothing overlaps."""
    performer = f"Practitioner/p{next(_performers)}"
    if facts:
        documented(factory, patient, {program}, org=org)
    with transaction(factory) as db:
        return record_entry(db, entry(organization_id=org, patient_id=patient, minutes=minutes, program=program,
                                      role=role, performer=performer), timezone=TZ, now=NOW).entries[0]


def person(factory: sessionmaker[Session], patient: str, name: str, *, care_manager: str | None = None,
           manager_name: str | None = None, mrn: str | None = None, org: str = ORG) -> None:
    with transaction(factory) as db:
        db.add(PatientRow(organization_id=org, patient_id=patient, name=name, birth_date=None, mrn=mrn,
                          care_manager=care_manager, care_manager_name=manager_name, updated_at=NOW))


def snapshot(factory: sessionmaker[Session], patient: str, eligible: list[str], *, org: str = ORG,
             month: str = MONTH, at: datetime = NOW) -> None:
    """A page view's snapshot (without the panel's summary, so the panel decides afresh) and the facts it read."""
    decision = Decision(month, "medicare", 2026, "most_supported", ()).to_json()
    if month == MONTH:
        documented(factory, patient, {RULES.families[k].time_program for k in eligible}, org=org,
                   complexity="moderate" if "complex_ccm" in eligible else None)
    with transaction(factory) as db:
        db.add(MonthStatusRow(organization_id=org, patient_id=patient, month=month, eligible_programs=eligible,
                              decision=decision, evaluated_at=at))


def panel(factory: sessionmaker[Session], **options: object) -> Panel:
    options.setdefault("today", TODAY)
    with factory() as db:
        return panel_rows(db, ORG, MONTH, RULES, **options)  # type: ignore[arg-type]


def row(result: Panel, patient: str, program: str = "ccm") -> PanelRow:
    found = [r for r in result.rows if r.patient_id == patient and r.program == program]
    assert len(found) == 1, [(r.patient_id, r.program) for r in result.rows]
    return found[0]


@pytest.fixture
def other_org(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with transaction(factory) as db:
        save_organizations(db, [Organization(id=OTHER_ORG, name="Other", issuer="https://other.example.org/fhir",
                                             client_id="app", timezone=TZ)])
    return factory


# -- statuses and thresholds ---------------------------------------------------------------------

def test_ccm_statuses_around_the_20_minute_threshold(factory) -> None:
    for patient, minutes in (("p9", 9), ("p10", 10), ("p19", 19), ("p20", 20)):
        add(factory, patient, minutes)
    snapshot(factory, "p0", ["ccm"])
    result = panel(factory)
    assert {r.patient_id: r.status for r in result.rows} == {
        "p0": "not started", "p9": "in progress", "p10": "close", "p19": "close", "p20": "billable"}
    p19, p20 = row(result, "p19"), row(result, "p20")
    assert (p19.next_code, p19.next_threshold, p19.minutes_needed) == ("99490", 20, 1)
    assert (row(result, "p10").minutes_needed, row(result, "p9").minutes_needed) == (10, 11)
    # Billable: the next threshold is the first 99439 unit at 40 minutes.
    assert (p20.next_code, p20.next_threshold, p20.minutes_needed, p20.codes_met) == ("99439", 40, 20,
                                                                                      (("99490", 1),))
    assert row(result, "p0").minutes == 0 and row(result, "p0").next_code == "99490"


def test_close_within_is_configurable(factory) -> None:
    add(factory, "p1", 8)
    assert row(panel(factory), "p1").status == "in progress"
    assert row(panel(factory, close_within=12), "p1").status == "close"
    assert row(panel(factory, close_within=11), "p1").status == "in progress"


def test_add_on_units_up_to_the_cap(factory) -> None:
    add(factory, "p40", 40)
    add(factory, "p60", 60)
    add(factory, "p75", 75)
    result = panel(factory)
    assert row(result, "p40").codes_met == (("99490", 1), ("99439", 1))
    assert (row(result, "p40").next_threshold, row(result, "p40").minutes_needed) == (60, 20)
    capped = row(result, "p75")
    assert capped.codes_met == (("99490", 1), ("99439", 2))
    assert (capped.status, capped.next_code, capped.minutes_needed) == ("billable", None, None)
    assert capped.captured == Decimal("66.13") + 2 * Decimal("50.44")


def test_only_the_counted_roles_count(factory) -> None:
    # 99491 counts only the billing practitioner; 30 of them bill 99491 rather than 99490 alone.
    add(factory, "doc", 30, role="billing-practitioner")
    # Psychiatric-consultant minutes never count toward a CoCM code.
    add(factory, "psy", 20, program="cocm", role="psychiatric-consultant")
    # PCM staff codes do not count the billing practitioner; 99424 does.
    add(factory, "pcm", 25, program="pcm", role="billing-practitioner")
    result = panel(factory)
    doc = row(result, "doc")
    assert doc.codes_met == (("99491", 1),) and doc.captured == Decimal("89.18")
    assert (doc.next_code, doc.next_threshold, doc.minutes_needed) == ("99437", 60, 30)
    psy = row(result, "psy", "cocm")
    assert (psy.minutes, psy.counted_minutes, psy.status) == (20, 0, "in progress")
    assert (psy.next_code, psy.minutes_needed) == ("G2214", 16)
    pcm = row(result, "pcm", "pcm")
    assert (pcm.next_code, pcm.minutes_needed, pcm.status) == ("99424", 5, "close")


def test_voided_and_amended_away_entries_do_not_count(factory) -> None:
    voided = add(factory, "gone", 25)
    with transaction(factory) as db:
        void_entry(db, ORG, voided.id, by="Practitioner/lead", reason="wrong patient", timezone=TZ, now=NOW)
    amended = add(factory, "fixed", 30)
    with transaction(factory) as db:
        amend_entry(db, ORG, amended.id, replace(amended.to_input(), minutes=12), by="Practitioner/lead",
                    reason="typo", timezone=TZ, now=NOW)
    result = panel(factory)
    assert "gone" not in {r.patient_id for r in result.rows}
    fixed = row(result, "fixed")
    assert (fixed.minutes, fixed.status, fixed.minutes_needed) == (12, "close", 8)


# -- enrolment and eligibility -------------------------------------------------------------------

def test_enrolment_by_snapshot_or_minutes(factory) -> None:
    snapshot(factory, "checked-none", [])
    snapshot(factory, "eligible", ["ccm", "bhi"], at=NOW - timedelta(days=2))
    add(factory, "minutes-only", 5, facts=False)
    snapshot(factory, "last-month", ["ccm"], month="2026-10")
    result = panel(factory)
    assert {(r.patient_id, r.program) for r in result.rows} == {
        ("eligible", "ccm"), ("eligible", "bhi"), ("minutes-only", "ccm")}
    assert row(result, "eligible", "bhi").eligibility == "eligible"
    assert row(result, "eligible", "bhi").eligibility_as_of == NOW - timedelta(days=2)
    unchecked = row(result, "minutes-only")
    assert (unchecked.eligibility, unchecked.eligibility_as_of) == ("not checked", None)
    assert result.totals.not_checked == 1


def test_minutes_without_consent_are_shown_without_revenue(factory) -> None:
    snapshot(factory, "p1", ["bhi"])
    add(factory, "p1", 25, facts=False)  # the facts consent to BHI only
    result = panel(factory)
    ccm = row(result, "p1")
    assert (ccm.eligibility, ccm.codes_met, ccm.captured, ccm.within_reach) == ("not eligible", (), 0, False)
    assert result.totals.captured == 0 and result.totals.not_eligible == 1


def test_minutes_before_consent_are_not_counted(factory) -> None:
    # Dorothy (ccm-no-consent): 25 minutes logged, consent recorded afterwards. The evaluator counts none of them.
    add(factory, "dorothy", 25, facts=False)
    with transaction(factory) as db:
        save_facts(db, ORG, "dorothy", MONTH, PatientFacts(
            month=MONTH, conditions=(Condition("E11.9", ICD, "active", id="dm"), Condition("I10", ICD, "active")),
            consents=(Consent("ccm", "active", date(2026, 11, 25), id="late"),),
            initiating_visit=date(2026, 6, 1)), None)
    dorothy = row(panel(factory), "dorothy")
    assert (dorothy.minutes, dorothy.counted_minutes, dorothy.codes_met, dorothy.captured) == (25, 0, (), 0)
    assert (dorothy.status, dorothy.next_code, dorothy.minutes_needed) == ("in progress", "99490", 20)


def test_complex_ccm_is_what_the_evaluator_picks(factory) -> None:
    snapshot(factory, "complex", ["complex_ccm"])
    add(factory, "complex", 50)
    snapshot(factory, "complex-60", ["complex_ccm"])
    add(factory, "complex-60", 60)
    add(factory, "plain", 60)
    result = panel(factory)
    # At 50 minutes 99487 (60) is not met: the evaluator bills 99490 + 99439, as the rollup will.
    assert row(result, "complex").codes_met == (("99490", 1), ("99439", 1))
    assert (row(result, "complex").next_code, row(result, "complex").minutes_needed) == ("99439", 10)
    # At 60, documented complexity makes 99487 the better-supported choice; without it, 99490 + 2 x 99439.
    assert row(result, "complex-60").codes_met == (("99487", 1),)
    assert row(result, "plain").codes_met == (("99490", 1), ("99439", 2))
    assert row(result, "complex").eligibility == "eligible"


def test_a_patient_missing_from_the_directory_is_listed_by_id(factory) -> None:
    add(factory, "no-directory", 5)
    assert row(panel(factory), "no-directory").name == "no-directory"


def test_programs_without_minute_thresholds(factory) -> None:
    add(factory, "t", 15, program="tcm", role="billing-practitioner")
    add(factory, "c", 1)
    result = panel(factory)
    tcm = row(result, "t", "tcm")
    assert (tcm.status, tcm.next_code, tcm.minutes_needed, tcm.captured) == ("not time-based", None, None, 0)
    assert [r.patient_id for r in result.rows] == ["c", "t"]


def test_other_organizations_patients_never_appear(other_org) -> None:
    person(other_org, "stranger", "Stranger Danger", care_manager="Practitioner/cm-x", manager_name="X",
           org=OTHER_ORG)
    add(other_org, "stranger", 19, org=OTHER_ORG)
    snapshot(other_org, "stranger-2", ["ccm"], org=OTHER_ORG)
    # The same patient id in both organizations: only this organization's minutes count here.
    add(other_org, "shared-id", 30, org=OTHER_ORG)
    add(other_org, "shared-id", 5)
    result = panel(other_org)
    assert {r.patient_id for r in result.rows} == {"shared-id"}
    assert row(result, "shared-id").minutes == 5
    assert result.care_managers == ()


# -- sorting and filters -------------------------------------------------------------------------

def test_sort_close_first_then_billable_then_the_rest_with_name_ties(factory) -> None:
    cases = [("a", "Zed Close", 18), ("b", "Amy Close", 18), ("c", "Bob Closest", 19), ("d", "Cy Billable", 25),
             ("e", "Di Billable", 38), ("f", "Ed Progress", 3), ("g", "Flo Progress", 8)]
    for patient, name, minutes in cases:
        person(factory, patient, name)
        add(factory, patient, minutes)
    person(factory, "h", "Al Eligible")
    snapshot(factory, "h", ["ccm"])
    result = panel(factory)
    assert [r.name for r in result.rows] == [
        "Bob Closest", "Amy Close", "Zed Close",      # close, fewest minutes needed first, then name
        "Di Billable", "Cy Billable",                 # billable, closest next unit first
        "Flo Progress", "Ed Progress",                # in progress, fewest needed first
        "Al Eligible"]                                # not started


def test_filters_by_program_and_care_manager(factory) -> None:
    person(factory, "p1", "Ann", care_manager="Practitioner/cm-1", manager_name="Carla Manager")
    person(factory, "p2", "Ben", care_manager="Practitioner/cm-2", manager_name="Bruno Manager")
    person(factory, "p3", "Cat")
    add(factory, "p1", 25)
    add(factory, "p1", 15, program="bhi")
    add(factory, "p2", 19)
    add(factory, "p3", 5, program="bhi")
    everyone = panel(factory)
    assert len(everyone.rows) == 4
    assert everyone.care_managers == (("Practitioner/cm-2", "Bruno Manager"), ("Practitioner/cm-1", "Carla Manager"))
    assert {"ccm", "pcm", "bhi", "cocm", "tcm", "apcm"} <= set(everyone.programs)
    bhi = panel(factory, program="bhi")
    assert [(r.patient_id, r.program) for r in bhi.rows] == [("p1", "bhi"), ("p3", "bhi")]
    assert bhi.totals.rows == 2 and bhi.totals.captured == 0
    carla = panel(factory, care_manager="Practitioner/cm-1")
    assert {(r.patient_id, r.program) for r in carla.rows} == {("p1", "ccm"), ("p1", "bhi")}
    assert carla.totals.patients == 1 and carla.totals.captured == Decimal("66.13")
    assert carla.care_managers == everyone.care_managers  # the choices do not shrink with the filter
    both = panel(factory, program="ccm", care_manager="Practitioner/cm-2")
    assert [r.patient_id for r in both.rows] == ["p2"]
    assert row(both, "p2").care_manager_name == "Bruno Manager"


# -- revenue estimates ---------------------------------------------------------------------------

def revenue_patients(factory: sessionmaker[Session]) -> None:
    add(factory, "billed", 20)         # 99490 captured
    add(factory, "short", 15)          # 5 short of 99490: within reach
    add(factory, "add-on", 35)         # 99490 captured, 5 short of 99439: within reach
    add(factory, "far", 5)             # 15 short: not within reach


def test_captured_and_within_reach_with_days_left(factory) -> None:
    revenue_patients(factory)
    totals = panel(factory).totals
    assert totals.label == ESTIMATE_LABEL
    assert totals.days_left == 11
    assert totals.captured == Decimal("132.26")
    assert totals.within_reach == Decimal("66.13") + Decimal("50.44")
    assert (totals.within_reach_rows, totals.within_reach_unknown, totals.captured_unknown) == (2, 0, 0)
    assert (totals.count("close"), totals.count("billable"), totals.count("in progress")) == (1, 2, 1)


def test_nothing_is_within_reach_once_the_month_has_ended(factory) -> None:
    revenue_patients(factory)
    last_day = panel(factory, today=date(2026, 11, 30)).totals
    assert (last_day.days_left, last_day.within_reach_rows) == (1, 2)
    after = panel(factory, today=date(2026, 12, 1))
    assert after.totals.days_left == 0
    assert (after.totals.within_reach, after.totals.within_reach_rows) == (0, 0)
    assert after.totals.captured == Decimal("132.26")
    assert row(after, "short").status == "close" and not row(after, "short").within_reach


def test_days_left_counts_today() -> None:
    assert Month.parse("2026-11").days_left(date(2026, 11, 1)) == 30
    assert Month.parse("2026-11").days_left(date(2026, 11, 30)) == 1
    assert Month.parse("2026-11").days_left(date(2026, 12, 1)) == 0
    assert Month.parse("2026-12").days_left(date(2026, 11, 20)) == 31
    assert Month.parse("2028-02").days_left(date(2028, 2, 28)) == 2


def without_figure(code: str):
    """The 2026 rule set with `code`'s rate unknown, as a rule file without a figure for it says."""
    family = RULES.code_family()[code]
    rule = RULES.code(code)
    rate = rule.rate.model_copy(update={"amount": None, "year": None, "checked": "secondary", "rvu": None,
                                        "facility_rvu": None, "facility_amount": None, "conversion_factor": None})
    codes = {**RULES.families[family].codes, code: rule.model_copy(update={"rate": rate})}
    families = {**RULES.families, family: RULES.families[family].model_copy(update={"codes": codes})}
    return RULES.model_copy(update={"families": families})


def test_unknown_rates_are_counted_not_guessed(factory) -> None:
    # G2214 (16 minutes), its rate unknown.
    add(factory, "g2214", 20, program="cocm", role="care-manager")
    add(factory, "near", 10, program="cocm", role="care-manager")
    with factory() as db:
        totals = panel_rows(db, ORG, MONTH, without_figure("G2214"), today=TODAY).totals
    assert (totals.captured, totals.captured_unknown) == (0, 1)
    assert (totals.within_reach, totals.within_reach_rows, totals.within_reach_unknown) == (0, 1, 1)


def test_locality_estimates_replace_the_national_ones_and_say_so(factory) -> None:
    revenue_patients(factory)
    # Illustrative GPCIs: 99490 is [(1.00 x 1.05) + (0.91 x 1.2) + (0.07 x 0.8)] x 33.4009 = 2.198 x 33.4009.
    pricing = Pricing(RULES, RateSettings(Locality("Test locality", Decimal("1.05"), Decimal("1.2"),
                                                   Decimal("0.8"))))
    totals = panel(factory, pricing=pricing).totals
    assert totals.label == pricing.label and totals.label.startswith("locality estimate for Test locality")
    assert totals.captured == 2 * Decimal("73.42")
    # 99439: [(0.70 x 1.05) + (0.76 x 1.2) + (0.05 x 0.8)] x 33.4009 = 1.687 x 33.4009 = 56.35
    assert totals.within_reach == Decimal("73.42") + Decimal("56.35")
    assert pricing.label in panel_csv(panel(factory, pricing=pricing)).splitlines()[0]


def test_bad_month_is_refused(factory) -> None:
    with factory() as db, pytest.raises(InvalidEntry, match="YYYY-MM|not a month"):
        panel_rows(db, ORG, "2026-13", RULES, today=TODAY)


# -- CSV -----------------------------------------------------------------------------------------

def test_csv_has_a_header_and_one_row_per_patient_program(factory) -> None:
    person(factory, "p1", "Ann Able", mrn="MRN-1", care_manager="Practitioner/cm", manager_name="Carla")
    add(factory, "p1", 25)
    add(factory, "p1", 5, program="bhi")
    snapshot(factory, "p1", ["ccm"])
    text = panel_csv(panel(factory))
    assert text.endswith("\r\n") and "\r\n" in text
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(parsed[0]) == CSV_HEADER
    assert len(parsed) == 3
    ccm = dict(zip(CSV_HEADER, parsed[1], strict=True))
    assert (ccm["Patient"], ccm["MRN"], ccm["Program"], ccm["Minutes"], ccm["Status"]) == (
        "Ann Able", "MRN-1", "ccm", "25", "billable")
    assert ccm["Codes met"] == "99490 x1" and ccm["Eligibility"] == "eligible"
    assert ccm["Eligibility as of (UTC)"] == "2026-11-20T17:00:00+00:00"
    assert ESTIMATE_LABEL in ",".join(parsed[0])


def test_csv_quotes_per_rfc_4180_and_neutralises_formulas(factory) -> None:
    names = {"q1": 'O"Brien, Pat\nJr', "q2": "=HYPERLINK(\"http://evil\")", "q3": "+1", "q4": "-2+3",
             "q5": "@SUM(A1)", "q6": "Plain Name"}
    for patient, name in names.items():
        person(factory, patient, name, mrn="=1+1" if patient == "q6" else None)
        add(factory, patient, 3)
    text = panel_csv(panel(factory))
    assert '"O""Brien, Pat\nJr"' in text
    parsed = {r[2]: r for r in csv.reader(io.StringIO(text, newline=""))}
    assert parsed["q1"][0] == 'O"Brien, Pat\nJr'
    assert parsed["q2"][0] == "'=HYPERLINK(\"http://evil\")"
    assert parsed["q3"][0] == "'+1" and parsed["q4"][0] == "'-2+3" and parsed["q5"][0] == "'@SUM(A1)"
    assert parsed["q6"][0] == "Plain Name" and parsed["q6"][1] == "'=1+1"
    for cells in parsed.values():
        assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)


def test_safe_cell() -> None:
    assert [safe_cell(v) for v in ("=a", "+a", "-a", "@a", "\ta", "a=b", "")] == [
        "'=a", "'+a", "'-a", "'@a", "'\ta", "a=b", ""]


# -- scale ---------------------------------------------------------------------------------------

def statements_for_panel(factory: sessionmaker[Session]) -> int:
    engine = factory.kw["bind"]
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        result = panel(factory)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert result.rows
    return len(seen)


def seed(factory: sessionmaker[Session], start: int, stop: int) -> None:
    for i in range(start, stop):
        person(factory, f"s{i}", f"Patient {i:04d}", care_manager=f"Practitioner/cm-{i % 3}")
        add(factory, f"s{i}", 5 + i % 30)
        if i % 2:
            snapshot(factory, f"s{i}", ["ccm", "bhi"])


def test_statement_count_does_not_grow_with_patients(factory) -> None:
    seed(factory, 0, 10)
    few = statements_for_panel(factory)
    seed(factory, 10, 200)
    many = statements_for_panel(factory)
    # Seven for the month (the care plans' review dates and the app's enrollment steps among them), and eight for the
    # one batch of patients evaluated here (facts, app records of five kinds: consents, attestations, scales, recorded
    # evidence, care plans; entries).
    assert few == many <= 15
    assert panel(factory).totals.patients == 200


def test_the_pages_kept_decision_is_used_while_the_ledger_matches(factory) -> None:
    add(factory, "kept", 25)
    with transaction(factory) as db:
        ledger = patient_month(db, ORG, "kept", MONTH)
        # A kept summary that differs from what the panel would decide shows which one was read.
        marker = Standing("ccm", True, (("99491", 1),), 30)
        db.add(MonthStatusRow(organization_id=ORG, patient_id="kept", month=MONTH, eligible_programs=["ccm"],
                              decision={}, panel={"ledger": month_fingerprint(ledger),
                                                                "standings": [marker.to_json()]}, evaluated_at=NOW))
    assert row(panel(factory), "kept").codes_met == (("99491", 1),)
    # Any new row in the patient-month's ledger makes it stale: the panel decides afresh.
    add(factory, "kept", 1)
    assert row(panel(factory), "kept").codes_met == (("99490", 1),)


def test_decisions_made_afresh_are_kept_for_the_next_load_when_asked(factory) -> None:
    for i in range(5):
        add(factory, f"k{i}", 20 + i)
    with transaction(factory) as db:
        first = panel_rows(db, ORG, MONTH, RULES, today=TODAY, timezone=TZ, keep=True)
    with factory() as db:
        kept = {r.patient_id: r.panel["ledger"] for r in db.scalars(select(MonthStatusRow)) if r.panel}
    assert set(kept) == {f"k{i}" for i in range(5)}
    # The next load reads the kept decisions (seven statements, no evaluation) and shows the same rows.
    assert statements_for_panel(factory) == 7
    assert panel(factory).rows == tuple(replace(r, eligibility_as_of=panel(factory).rows[i].eligibility_as_of)
                                        for i, r in enumerate(first.rows))


def test_a_care_plan_whose_review_date_has_come_shows_review_due(factory) -> None:
    from smart_app.access.roles import TimeRole
    from smart_app.ledger.care_plans import establish, load_templates, save_draft
    from smart_app.ledger.care_plans import seed as seed_plan

    add(factory, "due", 25)
    add(factory, "fresh", 25)
    for patient, signed in (("due", date(2025, 10, 1)), ("fresh", date(2026, 11, 2))):
        content = seed_plan(load_templates()["hypertension"], [], signed).to_json()
        with transaction(factory) as db:
            draft = save_draft(db, ORG, patient, content, template="hypertension", by="Practitioner/cm", now=NOW)
            establish(db, ORG, patient, draft.id, by="Practitioner/md", time_role=TimeRole.BILLING_PRACTITIONER,
                      on=signed, now=NOW)
    result = panel(factory)
    assert (row(result, "due").care_plan_review, row(result, "due").care_plan_review_due) == (date(2026, 10, 1), True)
    assert (row(result, "fresh").care_plan_review, row(result, "fresh").care_plan_review_due) == (
        date(2027, 11, 2), False)
