"""The patient's copy of an established care plan as a PDF: a plain-language summary first, then every element.

The summary ("Your care plan in brief") is generated from the plan's content, never typed separately, so it always
says what the signed plan says. fpdf2 with the core Helvetica font, text kept to Latin-1 as the superbill does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from smart_app.billing.superbill import latin1, letter_pdf
from smart_app.ledger.care_plans import LABELS, CarePlanVersion
from smart_app.statuses import CarePlanStatus

if TYPE_CHECKING:
    from fpdf import FPDF

SUMMARY_TITLE = "Your care plan in brief"


@dataclass(frozen=True)
class PlanCopy:
    """What the patient copy shows besides the plan: the practice, the patient and the people, by name."""

    version: CarePlanVersion
    practice: str
    patient_name: str
    birth_date: str
    signer: str
    care_manager: str = ""


def _long_date(day: object) -> str:
    """A date as "March 5, 2027" (the patient reads it; no ISO format)."""
    if not isinstance(day, date):
        return str(day or "")
    return f"{day:%B} {day.day}, {day.year}"


def _who(responsible: str, signer: str) -> str:
    """A role as the patient reads it: "you" for the patient, the doctor by name for the billing practitioner."""
    role = responsible.strip()
    lowered = role.lower()
    if lowered in ("patient", "the patient", "you", "self"):
        return "You"
    if lowered in ("billing practitioner", "practitioner", "physician", "doctor") and signer:
        return signer
    return role[:1].upper() + role[1:]


def summary(copy: PlanCopy) -> list[tuple[str, list[str]]]:
    """The plain-language summary as (heading, lines), written from the plan's content. Pure."""
    version, content = copy.version, copy.version.content
    goals = [f"{g.description}: {g.target}, by {_long_date(g.due)}." for g in content.goals]
    yours = [i.action for i in content.interventions if _who(i.responsible, copy.signer) == "You"]
    team = [f"{_who(i.responsible, copy.signer)}: {i.action}." for i in content.interventions
            if _who(i.responsible, copy.signer) != "You"]
    doing = [f"You: {action}." for action in yours] + team
    doing.append(f"Your medicines: {content.medication_management}")
    doing.append(f"If symptoms change: {content.symptom_management}")
    call = [f"With any question about this plan, or if you feel worse, call {copy.practice} and ask for "
            + (f"your care manager, {copy.care_manager}." if copy.care_manager else "your care team."),
            f"{copy.signer or 'Your doctor'} signed this plan and leads your care.",
            "In an emergency, call 911."]
    review = [f"We review this plan with you by {_long_date(version.review_due)}, or sooner if your health changes."
              if version.review_due else "We review this plan with you at least once a year."]
    return [("Your health problems", [f"{p}." if not p.endswith(".") else p for p in content.problems]),
            ("Your goals", goals),
            ("What you and your care team will do", doing),
            ("Who to call", call),
            ("When we review it", review)]


def _heading(pdf: FPDF, text: str, size: float = 11) -> None:
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", size)
    pdf.multi_cell(0, 6, latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)


def _lines(pdf: FPDF, lines: list[str], bullet: str = "- ") -> None:
    for line in lines:
        pdf.multi_cell(0, 5.2, latin1(f"{bullet}{line}"), new_x="LMARGIN", new_y="NEXT")


def care_plan_pdf(copy: PlanCopy, *, generated: datetime, compress: bool = True) -> bytes:
    """The patient copy of an established version; ValueError for a draft (only a signed plan is shared)."""
    version, content = copy.version, copy.version.content
    if version.status is not CarePlanStatus.ESTABLISHED or version.established_on is None:
        raise ValueError("only an established care-plan version has a patient copy")
    pdf = letter_pdf(f"{copy.practice} - care plan for {copy.patient_name}")
    pdf.set_compression(compress)
    pdf.set_creation_date(generated)
    pdf.set_title(latin1(f"Care plan for {copy.patient_name}, version {version.number}"))
    pdf.set_creator("smart-app")
    pdf.alias_nb_pages()
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(16, 12, 16)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.multi_cell(0, 8, latin1(f"Care plan for {copy.patient_name}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    born = f", born {copy.birth_date}" if copy.birth_date else ""
    pdf.multi_cell(0, 5.2, latin1(
        f"{copy.practice}{born}. Version {version.number}, established {_long_date(version.established_on)} by "
        f"{copy.signer}. Next review: {_long_date(version.review_due)}."), new_x="LMARGIN", new_y="NEXT")
    _heading(pdf, SUMMARY_TITLE, 13)
    for title, lines in summary(copy):
        _heading(pdf, title)
        _lines(pdf, lines)
    pdf.add_page()
    _heading(pdf, "The full plan", 13)
    _heading(pdf, LABELS["problems"])
    _lines(pdf, list(content.problems))
    for name in ("expected_outcome", "prognosis"):
        _heading(pdf, LABELS[name])
        _lines(pdf, [getattr(content, name)], bullet="")
    _heading(pdf, LABELS["goals"])
    _lines(pdf, [f"{g.description} - target {g.target} - by {g.due.isoformat()}" for g in content.goals])
    _heading(pdf, LABELS["symptom_management"])
    _lines(pdf, [content.symptom_management], bullet="")
    _heading(pdf, LABELS["interventions"])
    _lines(pdf, [f"{i.action} ({i.responsible})" for i in content.interventions])
    for name in ("medication_management", "allergies", "community_services", "coordination"):
        if getattr(content, name):  # allergies: versions saved before that element have none
            _heading(pdf, LABELS[name])
            _lines(pdf, [getattr(content, name)], bullet="")
    _heading(pdf, "Review")
    _lines(pdf, [f"Every {content.review_every_months} month(s); next review by {version.review_due}."], bullet="")
    _heading(pdf, "Signature")
    _lines(pdf, [f"Established {version.established_on.isoformat()} by {copy.signer} "
                 f"(signed in the app at {version.written_at:%Y-%m-%d %H:%M} UTC)."], bullet="")
    return bytes(pdf.output())
