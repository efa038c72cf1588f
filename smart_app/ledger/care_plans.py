"""The comprehensive care plan written in the app: the elements CMS lists, seeded from a condition's template and
the chart, drafted by the care team and established by a billing practitioner's signature. Every version is a
new row (append-only) covered by the audit chain; the established version in force on a day is what counts."""

from __future__ import annotations

import calendar
import dataclasses
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smart_app.access.roles import TimeRole
from smart_app.db import utcnow
from smart_app.errors import ConfigError
from smart_app.ledger.audit import CARE_PLAN_DRAFTED, CARE_PLAN_ESTABLISHED, canonical_json
from smart_app.ledger.consents import check_person
from smart_app.ledger.coverage import record_rows
from smart_app.ledger.errors import LedgerError, LedgerNotFound
from smart_app.ledger.records import CarePlanRow, CarePlanVersionRow
from smart_app.ledger.validation import MAX_NOTE_CHARS
from smart_app.ledger.writelock import hold_key
from smart_app.paths import data_path
from smart_app.rules.facts import CarePlan as FactCarePlan
from smart_app.rules.facts import Condition, PatientFacts
from smart_app.statuses import CarePlanStatus

TEMPLATE_FOLDER = "care-plan-templates"
# The free-text elements, in the order CMS lists them (with the problem list, goals and interventions between).
TEXT_FIELDS = ("expected_outcome", "prognosis", "symptom_management", "medication_management",
               "community_services", "coordination")
LABELS = {"problems": "Problem list", "expected_outcome": "Expected outcome", "prognosis": "Prognosis",
          "goals": "Measurable treatment goals", "symptom_management": "Symptom management",
          "interventions": "Planned interventions and who is responsible",
          "medication_management": "Medication management", "community_services": "Community and social services",
          "coordination": "Coordination with outside agencies and specialists",
          "allergies": "Allergies and intolerances",
          "review_every_months": "Periodic review (months)"}
MAX_ITEMS = 50
# The programs (rule families) whose codes need a comprehensive care plan established (CPT's descriptors).
CARE_PLAN_PROGRAMS = frozenset({"ccm", "complex_ccm", "pcm", "apcm"})
_LOCK_SPACE = "smart_app.ledger.care_plan"


class InvalidCarePlan(LedgerError):
    """The plan cannot be saved or signed as given."""

    title = "The care plan was not saved"


class SignatureRefused(LedgerError):
    """Only a billing practitioner establishes a care plan."""

    title = "The care plan was not signed"
    status_code = 403


@dataclass(frozen=True)
class Goal:
    """A measurable treatment goal: what is measured, the target, and the date to reach it."""

    description: str
    target: str
    due: date


@dataclass(frozen=True)
class Intervention:
    """A planned intervention and who on the care team is responsible for it."""

    action: str
    responsible: str


@dataclass(frozen=True)
class CarePlanContent:
    """The elements of a comprehensive care plan (CMS's list); `review_every_months` schedules the next review."""

    problems: tuple[str, ...]
    expected_outcome: str
    prognosis: str
    goals: tuple[Goal, ...]
    symptom_management: str
    interventions: tuple[Intervention, ...]
    medication_management: str
    community_services: str
    coordination: str
    review_every_months: int
    # Optional (older versions have none): the allergies as the EHR lists them, beside medication management.
    allergies: str = ""

    def to_json(self) -> dict[str, Any]:
        """The content as stored (dates ISO)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in TEXT_FIELDS}
        data["allergies"] = self.allergies
        data["problems"] = list(self.problems)
        data["goals"] = [{"description": g.description, "target": g.target, "due": g.due.isoformat()}
                         for g in self.goals]
        data["interventions"] = [{"action": i.action, "responsible": i.responsible} for i in self.interventions]
        data["review_every_months"] = self.review_every_months
        return data


@dataclass(frozen=True)
class Template:
    """A condition's template: which conditions it fits (ICD-10-CM prefixes) and the elements it proposes, goals
    due a number of months after the draft."""

    key: str
    title: str
    codes: tuple[str, ...]
    elements: Mapping[str, Any]

    def fits(self, condition: Condition) -> bool:
        """Whether the template is for this condition (by code prefix)."""
        code = (condition.code or "").upper()
        return any(code.startswith(prefix.upper()) for prefix in self.codes)


@dataclass(frozen=True)
class CarePlanVersion:
    """One stored version of a patient's care plan."""

    id: str
    plan_id: str
    organization_id: str
    patient_id: str
    number: int
    status: CarePlanStatus
    template: str
    content: CarePlanContent
    written_by: str
    written_at: datetime
    established_on: date | None
    review_due: date | None


def _text(value: object, what: str, *, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidCarePlan(f"{what} must be text.", f"Enter {what.lower()} as text.")
    value = value.strip()
    if "\x00" in value:
        raise InvalidCarePlan(f"{what} holds a NUL character.", "Retype it without control characters.")
    if len(value) > MAX_NOTE_CHARS:
        raise InvalidCarePlan(f"{what} is longer than {MAX_NOTE_CHARS} characters.", f"Shorten {what.lower()}.")
    if required and not value:
        raise InvalidCarePlan(f"{what} is empty.", f"Fill in {what.lower()}; the plan needs every element.")
    return value


def _items(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidCarePlan(f"{what} must be a list.", f"Enter {what.lower()} one per line.")
    if len(value) > MAX_ITEMS:
        raise InvalidCarePlan(f"{what} has more than {MAX_ITEMS} items.", "Keep the plan to what the team acts on.")
    return value


def _date(value: object, what: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidCarePlan(f"{what} has no valid date ({value!r}).", "Enter the date as YYYY-MM-DD.") from None


def parse_content(data: object) -> CarePlanContent:
    """The content from its JSON form, every element checked; InvalidCarePlan names the first one missing."""
    if not isinstance(data, Mapping):
        raise InvalidCarePlan("The care plan is not an object of elements.", "Send the plan's elements by name.")
    problems = tuple(_text(p, "A problem") for p in _items(data.get("problems"), "The problem list"))
    if not problems:
        raise InvalidCarePlan("The problem list is empty.", "List at least one problem the plan addresses.")
    goals = []
    for raw in _items(data.get("goals"), "The goals"):
        if not isinstance(raw, Mapping):
            raise InvalidCarePlan("A goal is not an object.", "Give each goal a description, target and date.")
        goals.append(Goal(_text(raw.get("description"), "A goal's description"),
                          _text(raw.get("target"), "A goal's target"), _date(raw.get("due"), "A goal")))
    if not goals:
        raise InvalidCarePlan("The plan has no measurable goal.", "Add a goal with a target and a date.")
    interventions = []
    for raw in _items(data.get("interventions"), "The interventions"):
        if not isinstance(raw, Mapping):
            raise InvalidCarePlan("An intervention is not an object.", "Give each intervention an action and who.")
        interventions.append(Intervention(_text(raw.get("action"), "An intervention"),
                                          _text(raw.get("responsible"), "Who is responsible for an intervention")))
    if not interventions:
        raise InvalidCarePlan("The plan has no planned intervention.", "Add an intervention and who does it.")
    texts = {name: _text(data.get(name), LABELS[name]) for name in TEXT_FIELDS}
    months = data.get("review_every_months")
    if isinstance(months, str) and months.strip().isdigit():
        months = int(months)
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 12:
        raise InvalidCarePlan("The review schedule must be every 1 to 12 months.",
                              "Enter how many months until the plan is reviewed (at least yearly).")
    allergies = _text(data.get("allergies"), LABELS["allergies"], required=False)
    return CarePlanContent(problems=problems, goals=tuple(goals), interventions=tuple(interventions),
                           review_every_months=months, allergies=allergies, **texts)


def add_months(day: date, months: int) -> date:
    """The same day `months` later (the month's last day when it has fewer days)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def load_templates(folder: Path | None = None) -> dict[str, Template]:
    """The condition templates kept as data beside the rules (one YAML file each), by key."""
    where = folder or data_path("rules") / TEMPLATE_FOLDER
    templates: dict[str, Template] = {}
    for path in sorted(where.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not data.get("key") or not data.get("title"):
            raise ConfigError(f"The care-plan template {path.name} has no key or title.",
                              f"See {where / 'README.md'} for the template's keys.")
        key = str(data["key"])
        if key in templates:
            raise ConfigError(f"Two care-plan templates use the key {key!r}.", f"Rename the key in {path.name}.")
        try:
            # A template must make a valid plan once seeded, so a broken file fails at load, not at the bedside.
            seed(Template(key, str(data["title"]), (), data), (), date(2026, 1, 1))
        except InvalidCarePlan as exc:
            raise ConfigError(f"The care-plan template {path.name} is incomplete: {exc.message}",
                              f"See {where / 'README.md'} for the template's keys.") from exc
        templates[key] = Template(key, str(data["title"]), tuple(str(c) for c in data.get("codes") or ()), data)
    return templates


def suggested(templates: Mapping[str, Template], conditions: Iterable[Condition]) -> str | None:
    """The key of the first template fitting one of the patient's active conditions."""
    for condition in conditions:
        if condition.clinical_status not in (None, "active", "recurrence", "relapse"):
            continue
        for template in templates.values():
            if template.fits(condition):
                return template.key
    return None


def seed(template: Template, conditions: Iterable[Condition], today: date) -> CarePlanContent:
    """A draft from the template and the active problems, goals dated from today. Pure; the rest of the chart
    (medications, allergies, care team, visits) is added by `ledger.care_plan_seed.seed_from_chart`."""
    elements = template.elements
    problems = [c.display or c.code or "" for c in conditions
                if c.clinical_status in (None, "active", "recurrence", "relapse") and (c.display or c.code)]
    if not problems:
        problems = [template.title]
    goals = [{"description": g.get("description"), "target": g.get("target"),
              "due": add_months(today, int(g.get("due_in_months") or 3))}
             for g in elements.get("goals") or () if isinstance(g, Mapping)]
    return parse_content({**{name: elements.get(name) for name in TEXT_FIELDS}, "problems": problems,
                          "goals": goals, "interventions": elements.get("interventions"),
                          "review_every_months": elements.get("review_every_months")})


def _version(row: CarePlanVersionRow) -> CarePlanVersion:
    return CarePlanVersion(row.id, row.plan_id, row.organization_id, row.patient_id, row.number,
                           CarePlanStatus(row.status), row.template, parse_content(json.loads(row.content)),
                           row.written_by, row.written_at, row.established_on, row.review_due)


def _plan(session: Session, organization_id: str, patient_id: str) -> CarePlanRow | None:
    return session.scalars(select(CarePlanRow).where(CarePlanRow.organization_id == organization_id,
                                                     CarePlanRow.patient_id == patient_id)).first()


def _append(session: Session, plan: CarePlanRow, *, status: CarePlanStatus, template: str,
            content: CarePlanContent, by: str, now: datetime, established_on: date | None = None) -> CarePlanVersionRow:
    latest = session.scalar(select(func.max(CarePlanVersionRow.number)).where(CarePlanVersionRow.plan_id == plan.id))
    row = CarePlanVersionRow(
        id=str(uuid.uuid4()), plan_id=plan.id, organization_id=plan.organization_id, patient_id=plan.patient_id,
        number=(latest or 0) + 1, status=status, template=template, content=canonical_json(content.to_json()),
        written_by=by, written_at=now, established_on=established_on,
        review_due=add_months(established_on, content.review_every_months) if established_on else None)
    session.add(row)
    return row


def save_draft(session: Session, organization_id: str, patient_id: str, content: object, *, template: str, by: str,
               now: datetime | None = None) -> CarePlanVersion:
    """Keep a new draft version (the plan is started on the first one), attributed and audited."""
    if not organization_id or not patient_id:
        raise InvalidCarePlan("The plan names no organization or patient.", "Relaunch the app from the chart.")
    check = parse_content(content)
    try:
        check_person(by, "The person writing the plan,")
    except LedgerError as exc:
        raise InvalidCarePlan(exc.message, exc.hint) from exc
    template = _text(template, "The template", required=False)[:60]
    now = now or utcnow()
    # One writer per patient's plan at a time, so version numbers follow each other (the unique key backs it).
    hold_key(session, _LOCK_SPACE, f"{organization_id}|{patient_id}")
    plan = _plan(session, organization_id, patient_id)
    rows: list[Any] = []
    if plan is None:
        plan = CarePlanRow(id=str(uuid.uuid4()), organization_id=organization_id, patient_id=patient_id,
                           started_by=by, started_at=now)
        session.add(plan)
        rows.append(plan)
    row = _append(session, plan, status=CarePlanStatus.DRAFT, template=template, content=check, by=by, now=now)
    rows.append(row)
    record_rows(session, rows, actor=by, action=CARE_PLAN_DRAFTED, subject=f"Patient/{patient_id}",
                organization_id=organization_id, now=now,
                detail={"patient": patient_id, "plan": plan.id, "version": row.number, "template": template})
    return _version(row)


def establish(session: Session, organization_id: str, patient_id: str, version_id: str, *, by: str,
              time_role: TimeRole | None, on: date, now: datetime | None = None) -> CarePlanVersion:
    """The billing practitioner signs the latest draft: a new, established version with its next review date."""
    if time_role is not TimeRole.BILLING_PRACTITIONER:
        role = time_role.label if time_role else "no time role"
        raise SignatureRefused(f"Only the billing practitioner establishes the care plan; you are {role}.",
                               "Save it as a draft and ask the patient's billing practitioner to sign it.")
    check_person(by, "The person signing the plan,")
    now = now or utcnow()
    hold_key(session, _LOCK_SPACE, f"{organization_id}|{patient_id}")
    draft = session.get(CarePlanVersionRow, version_id)
    if draft is None or draft.organization_id != organization_id or draft.patient_id != patient_id:
        raise LedgerNotFound("No such care-plan version for this patient.", "Reload the care plan and sign from it.")
    plan = session.get(CarePlanRow, draft.plan_id)
    assert plan is not None  # a version's plan_id is a foreign key
    latest = session.scalar(select(func.max(CarePlanVersionRow.number)).where(CarePlanVersionRow.plan_id == plan.id))
    if draft.number != latest:
        raise InvalidCarePlan(f"Version {draft.number} is not the latest ({latest}).",
                              "Reload the care plan: someone saved a newer version; read it, then sign that one.")
    if draft.status is not CarePlanStatus.DRAFT:
        raise InvalidCarePlan(f"Version {draft.number} is already established.", "Nothing to sign.")
    content = parse_content(json.loads(draft.content))
    row = _append(session, plan, status=CarePlanStatus.ESTABLISHED, template=draft.template, content=content, by=by,
                  now=now, established_on=on)
    record_rows(session, [row], actor=by, action=CARE_PLAN_ESTABLISHED, subject=f"Patient/{patient_id}",
                organization_id=organization_id, now=now,
                detail={"patient": patient_id, "plan": plan.id, "version": row.number, "draft": draft.number,
                        "established_on": on.isoformat(), "review_due": row.review_due.isoformat()
                        if row.review_due else None})
    return _version(row)


def plan_versions(session: Session, organization_id: str, patient_id: str) -> list[CarePlanVersion]:
    """Every version of the patient's care plan, newest first."""
    rows = session.scalars(select(CarePlanVersionRow).where(
        CarePlanVersionRow.organization_id == organization_id, CarePlanVersionRow.patient_id == patient_id,
    ).order_by(CarePlanVersionRow.number.desc()))
    return [_version(row) for row in rows]


def in_force(versions: Iterable[CarePlanVersion], on: date) -> CarePlanVersion | None:
    """The established version in force on a day: the latest signed on or before it. Pure."""
    signed = [v for v in versions if v.status is CarePlanStatus.ESTABLISHED and v.established_on
              and v.established_on <= on]
    return max(signed, key=lambda v: v.number, default=None)


def review_due(versions: Iterable[CarePlanVersion], today: date) -> date | None:
    """The next review date of the plan in force today (None without an established plan). Pure."""
    current = in_force(versions, today)
    return current.review_due if current else None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _parts(line: str, count: int, what: str, shape: str) -> list[str]:
    parts = [p.strip() for p in line.split("|")]
    if len(parts) != count or not all(parts):
        raise InvalidCarePlan(f"{what} {line!r} is not written as {shape}.", f"Write each {what.lower()} on its "
                              f"own line as {shape}.")
    return parts


def from_form(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The content from the editor's fields: a problem per line, goals as `description | target | YYYY-MM-DD`,
    interventions as `action | who`. Pure; `parse_content` checks the result."""
    goals = [dict(zip(("description", "target", "due"), _parts(line, 3, "Goal", "description | target | date"),
                      strict=True)) for line in _lines(str(fields.get("goals") or ""))]
    interventions = [dict(zip(("action", "responsible"), _parts(line, 2, "Intervention", "action | who"),
                              strict=True)) for line in _lines(str(fields.get("interventions") or ""))]
    return {**{name: fields.get(name) for name in TEXT_FIELDS}, "problems": _lines(str(fields.get("problems") or "")),
            "goals": goals, "interventions": interventions, "review_every_months": fields.get("review_every_months"),
            "allergies": fields.get("allergies")}


def to_form(content: CarePlanContent) -> dict[str, Any]:
    """The editor's fields for a content (the inverse of `from_form`). Pure."""
    return {**{name: getattr(content, name) for name in TEXT_FIELDS}, "problems": "\n".join(content.problems),
            "goals": "\n".join(f"{g.description} | {g.target} | {g.due.isoformat()}" for g in content.goals),
            "interventions": "\n".join(f"{i.action} | {i.responsible}" for i in content.interventions),
            "review_every_months": content.review_every_months, "allergies": content.allergies}


# How the facts name a plan established in the app: its version number and row id (`with_care_plans`).
APP_PLAN_PREFIX = "app-care-plan/"


def with_care_plans(facts: PatientFacts, versions: Iterable[CarePlanVersion]) -> PatientFacts:
    """The facts with each established version as an active CarePlan dated its signature, as one read from the EHR
    (drafts do not count). Pure."""
    plans = tuple(FactCarePlan("active", v.established_on, id=f"{APP_PLAN_PREFIX}v{v.number}/{v.id}")
                  for v in versions if v.status is CarePlanStatus.ESTABLISHED and v.established_on)
    return dataclasses.replace(facts, care_plans=facts.care_plans + plans) if plans else facts


def plan_in_force_named(facts: PatientFacts, last_day: date) -> str | None:
    """How a claim names the app's care plan in force at the month's end ("version 2, established 2026-12-06")."""
    ours = [p for p in facts.care_plans if p.id and p.id.startswith(APP_PLAN_PREFIX) and p.date <= last_day]
    if not ours:
        return None
    plan = max(ours, key=lambda p: (p.date, int((p.id or "").split("/")[1][1:])))
    number = (plan.id or "").split("/")[1][1:]
    return f"care plan version {number}, established {plan.date.isoformat()} in the app"
