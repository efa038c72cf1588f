"""A care-plan draft seeded from what the EHR has: a condition's template and the active problems, then the active
medication orders, the allergies, the care team (who is responsible, who to coordinate with) and the last year's
visits, each seeded line saying where it came from. Pure: the chart arrives as a `ChartFacts` value."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from smart_app.ledger.care_plans import CarePlanContent, Intervention, Template, seed
from smart_app.ledger.validation import MAX_NOTE_CHARS
from smart_app.rules.facts import Condition

ACTIVE_PROBLEM = (None, "active", "recurrence", "relapse")
# Enough for any real medication list or year of visits while keeping a field inside MAX_NOTE_CHARS.
MAX_LINES = 25


@dataclass(frozen=True)
class ChartLine:
    """One fact read from the EHR, as a line of the plan: its text, the resource type and its date."""

    text: str
    resource: str
    on: date | None = None

    @property
    def source(self) -> str:
        """Where the line came from, as the editor says it ("from the EHR: MedicationRequest, 2026-03-02")."""
        return f"from the EHR: {self.resource}" + (f", {self.on.isoformat()}" if self.on else "")


@dataclass(frozen=True)
class TeamMember:
    """A person on the patient's care team: name, role as the EHR words it, and their time role in the app
    (`care manager`, `billing practitioner`, ... as `TimeRole.label`), None for people outside the practice's
    care-management team (specialists, agencies)."""

    name: str
    role: str
    time_role: str | None = None


@dataclass(frozen=True)
class ChartFacts:
    """What the EHR gave for the plan; a None list was not read (the EHR refused or failed), with `unread`
    saying why, so the draft never says "no allergies" when it could not look."""

    conditions: tuple[Condition, ...] = ()
    medications: tuple[ChartLine, ...] | None = ()
    allergies: tuple[ChartLine, ...] | None = ()
    team: tuple[TeamMember, ...] | None = ()
    visits: tuple[ChartLine, ...] | None = ()
    unread: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeededLine:
    """A line of the draft and where it came from, shown under its element in the editor."""

    element: str
    text: str
    source: str


@dataclass(frozen=True)
class SeededPlan:
    """The seeded draft, where each seeded line came from, and what could not be read."""

    content: CarePlanContent
    lines: tuple[SeededLine, ...]
    notes: tuple[str, ...]

    def sources(self, element: str) -> list[SeededLine]:
        """The seeded lines of one element."""
        return [line for line in self.lines if line.element == element]


def _clean(text: str) -> str:
    # "|" separates an intervention's action from who does it in the editor; a name must not carry one.
    return " ".join(text.replace("|", "/").split())


def _with(base: str, heading: str, lines: Iterable[str]) -> str:
    items = [f"- {line}" for line in lines][:MAX_LINES]
    if not items:
        return base
    text = "\n".join(part for part in (base, heading, *items) if part)
    return text[:MAX_NOTE_CHARS]


def _who(responsible: str, team: Iterable[TeamMember]) -> str:
    """The template's role ("care manager") with the care-team members who hold it, where the EHR names them."""
    names = [m.name for m in team if m.time_role and m.time_role.lower() == responsible.strip().lower()]
    return f"{responsible}: {', '.join(names)}" if names else responsible


def seed_from_chart(template: Template, chart: ChartFacts, today: date) -> SeededPlan:
    """The draft from a template and the chart: problems, medications, allergies, who is responsible for each
    intervention, the care team and recent visits for coordination. Pure."""
    base = seed(template, chart.conditions, today)
    lines: list[SeededLine] = []
    for condition in chart.conditions:
        if condition.clinical_status in ACTIVE_PROBLEM and (condition.display or condition.code):
            line = ChartLine(condition.display or condition.code or "", "Condition", condition.onset)
            lines.append(SeededLine("problems", line.text, line.source))

    medications = [m for m in chart.medications or ()][:MAX_LINES]
    lines += [SeededLine("medication_management", m.text, m.source) for m in medications]
    medication_text = _with(base.medication_management, "Active medication orders in the EHR:",
                            (m.text for m in medications))

    allergies = ""
    if chart.allergies is not None:
        if chart.allergies:
            allergies = "\n".join(a.text for a in chart.allergies[:MAX_LINES])[:MAX_NOTE_CHARS]
            lines += [SeededLine("allergies", a.text, a.source) for a in chart.allergies[:MAX_LINES]]
        else:
            # The EHR was asked and lists none: say so, but leave it to the team to confirm with the patient.
            allergies = "None recorded in the EHR; confirm with the patient."
            lines.append(SeededLine("allergies", allergies, "from the EHR: AllergyIntolerance (none listed)"))

    team = tuple(chart.team or ())
    interventions = []
    for item in base.interventions:
        who = _clean(_who(item.responsible, team))
        interventions.append(Intervention(item.action, who))
        if who != item.responsible:
            lines.append(SeededLine("interventions", f"{item.action} | {who}", "from the EHR: CareTeam"))

    coordination = base.coordination
    members = [f"{m.name} ({m.role})" if m.role else m.name for m in team]
    coordination = _with(coordination, "Care team in the EHR:", members)
    lines += [SeededLine("coordination", text, "from the EHR: CareTeam") for text in members[:MAX_LINES]]
    visits = [v for v in chart.visits or ()][:MAX_LINES]
    coordination = _with(coordination, "Seen in the last 12 months:", (v.text for v in visits))
    lines += [SeededLine("coordination", v.text, v.source) for v in visits]

    content = dataclasses.replace(base, medication_management=medication_text, allergies=allergies,
                                  interventions=tuple(interventions), coordination=coordination)
    return SeededPlan(content, tuple(lines), chart.unread)
