"""Superbills for a patient-month (one claim) or an organization-month (many): HTML, PDF and CSV.

All three show the same facts per claim: patient (name, MRN, birth date), codes with units and
service dates, minutes by program, role and person, the billing and supervising practitioners,
diagnoses, consent dates and place of service. Money is each code's estimate times units, priced by
the organization's `Pricing` (national, or its Medicare locality's when its file names the GPCIs) and
always labelled with what it is (`Pricing.label`): it is not a payment amount.

- HTML: `templates/superbill.html` in the app's autoescaped Jinja2 environment, styled only by
  `/static/superbill.css` (the CSP allows no inline styles and the page runs no script); one
  section per patient, each printed on its own page.
- PDF: fpdf2 with the core Helvetica font (no font files); text outside Latin-1 is folded to its
  closest Latin-1 form or "?"; one patient per page, page numbers and the estimate label in the footer.
- CSV: RFC 4180 through the csv module, one row per claim line; a text cell that a spreadsheet
  would read as a formula (leading =, +, -, @, tab or carriage return) is prefixed with "'".
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from smart_app.billing.fhir_resources import PLACE_OF_SERVICE_NAMES, program_minutes, program_name
from smart_app.billing.proposal import CARE_PLAN_EVIDENCE
from smart_app.billing.values import ClaimLine, LoggedTime, ProposedClaim
from smart_app.jinja_env import environment
from smart_app.ledger.months import Month
from smart_app.rules.rates import Estimate, EstimateBasis, Pricing

if TYPE_CHECKING:
    from fpdf import FPDF

TEMPLATE = "superbill.html"
CSV_COLUMNS = (
    "month", "patient_id", "patient_name", "mrn", "birth_date", "code", "units", "service_date",
    "place_of_service", "program", "minutes", "minutes_by_role", "billing_practitioner",
    "supervising_practitioner", "diagnoses", "consent_date", "estimated_rate", "estimated_amount",
    "estimate_basis", "mbi",
    # Rows of the itemized time log ("time") follow each patient's code rows ("code").
    "row", "entry_date", "start", "end", "entry_minutes", "activity", "person", "role", "note", "counts_toward",
    "not_counted", "why_not_counted",
)
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
# Characters outside Latin-1 that have an obvious Latin-1 spelling.
_LATIN1_FOLDS = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2026": "...", "\u2022": "*", "\u00a0": " ",
    "\u2009": " ", "\u202f": " ", "\u20ac": "EUR", "\u2122": "(TM)", "\u2264": "<=", "\u2265": ">=",
    # Letters without a decomposition into a Latin-1 base letter.
    "\u0141": "L", "\u0142": "l", "\u0110": "D", "\u0111": "d", "\u0152": "OE", "\u0153": "oe", "\u0131": "i",
}


# ---------------------------------------------------------------- the shared view of a claim


@dataclass(frozen=True)
class LineView:
    """One claim line as every format shows it."""

    code: str
    descriptor: str
    units: int
    service_date: str
    program: str
    program_name: str
    minutes: int
    minutes_by_role: str
    consent_date: str
    rate: str
    rate_year: str
    amount: str
    # "national" or "locality: <name>"; a line whose code has no RVUs stays national whatever the settings.
    basis: str


@dataclass(frozen=True)
class LogRow:
    """One entry of the itemized time log as every format shows it."""

    date: str
    start: str
    end: str
    minutes: int
    program: str
    activity: str
    person: str
    role: str
    note: str
    counts_toward: str
    not_counted: str


@dataclass(frozen=True)
class PatientView:
    """One claim (patient-month) as every format shows it."""

    patient_id: str
    name: str
    mrn: str
    birth_date: str
    place_of_service: str
    billing_practitioner: str
    supervising_practitioner: str
    diagnoses: tuple[str, ...]
    consents: tuple[str, ...]
    lines: tuple[LineView, ...]
    programs: tuple[tuple[str, int, str], ...]  # (program name, minutes, minutes by role)
    people: tuple[tuple[str, str, int], ...]  # (name, role, minutes)
    estimated_total: str
    warnings: tuple[str, ...]
    late_entries: int
    # Who approved the claim and when ("Approved by ... on ..."), or "" for a draft.
    approval: str = ""
    mbi: str = ""
    time_log: tuple[LogRow, ...] = ()
    # How the log's minutes add up to the minutes billed, and why the rest are not billed.
    reconciliation: tuple[str, ...] = ()
    # The care plan established in the app and in force that month, as the claim names it ("" when none).
    care_plan: str = ""


def approval_text(name: str, when: datetime, timezone: str) -> str:
    """`Approved by Pat Kowalski on Dec 06, 2026 at 10:15`, in the organization's time."""
    return f"Approved by {name} on {when.astimezone(ZoneInfo(timezone)):%b %d, %Y at %H:%M}"


def money(amount: Decimal | float | None) -> str:
    """"$1,234.50", or "" when unknown."""
    return "" if amount is None else f"${amount:,.2f}"


def estimate_label(pricing: Pricing) -> str:
    """The label beside every amount: which estimate, and that it is not a payment amount."""
    label = pricing.label
    return label[:1].upper() + label[1:]


def _estimate(line: ClaimLine, pricing: Pricing) -> Estimate:
    return pricing.unit(line.code, line.rate)


def _basis(estimate: Estimate, pricing: Pricing) -> str:
    place = pricing.settings.locality
    return f"locality: {place.name}" if estimate.basis is EstimateBasis.LOCALITY and place else "national"


def estimated_total(claim: ProposedClaim, pricing: Pricing) -> Decimal:
    """The claim's lines priced and summed, where a figure is known (an estimate, not a payment)."""
    return sum((amount for line in claim.lines
                if (amount := _estimate(line, pricing).times(line.units)) is not None), Decimal("0.00"))


def roles_text(by_role: dict[str, int]) -> str:
    """ "clinical-staff:20;care-manager:5" in descending minutes, then role name."""
    pairs = sorted(((role, mins) for role, mins in by_role.items() if mins), key=lambda rm: (-rm[1], rm[0]))
    return ";".join(f"{role}:{mins}" for role, mins in pairs)


def person(claim: ProposedClaim, reference: str) -> str:
    """ "Dr. A, MD, NPI 1234567893 (Practitioner/1)" with what the claim knows of them, else the reference."""
    if not reference:
        return ""
    known = next((p for p in claim.performers if p.reference == reference and (p.name or p.npi)), None)
    return f"{known.label} ({reference})" if known else reference


def counts_toward(item: LoggedTime) -> str:
    """ "99490: 15, 99439: 5", or "-" when none of the entry's minutes count."""
    return ", ".join(f"{code}: {mins}" for code, mins in item.counted) or "-"


def log_rows(claim: ProposedClaim) -> tuple[LogRow, ...]:
    """The itemized time log, oldest entry first."""
    return tuple(LogRow(
        date=item.date, start=item.start, end=item.end, minutes=item.minutes, program=program_name(item.program),
        activity=item.activity.replace("-", " "), person=item.performer_name or item.performer, role=item.role,
        note=item.note, counts_toward=counts_toward(item),
        not_counted=f"{item.not_counted} ({item.why_not})" if item.not_counted else "")
        for item in claim.time_log)


def reconciliation(claim: ProposedClaim) -> tuple[str, ...]:
    """Logged minutes = minutes counted toward the codes + each reason the rest are not, in plain sentences."""
    if not claim.time_log:
        return ()
    logged = sum(item.minutes for item in claim.time_log)
    counted = sum(m for item in claim.time_log for _, m in item.counted)
    out = [f"{logged} minutes logged in {len(claim.time_log)} entries; {counted} count toward the codes billed."]
    reasons: dict[str, int] = {}
    for item in claim.time_log:
        if item.not_counted:
            reasons[item.why_not] = reasons.get(item.why_not, 0) + item.not_counted
    out += [f"{mins} minutes not billed: {why}." for why, mins in reasons.items()]
    if reasons:
        out.append("Minutes by program are those documented after consent; minutes by person are those that "
                   "count toward the codes.")
    return tuple(out)


def consent_date(claim: ProposedClaim, program: str) -> str:
    """The consent date a line's program rests on (complex_ccm uses the ccm consent), or ""."""
    for key in (program, program.rsplit("_", 1)[-1]):
        dates = sorted(c.date for c in claim.consents if c.program == key)
        if dates:
            return dates[0].isoformat()
    return ""


def place_of_service(code: str) -> str:
    """ "11 (Office)" for a known code, else the code."""
    name = PLACE_OF_SERVICE_NAMES.get(code)
    return f"{code} ({name})" if name else code


def _line_view(claim: ProposedClaim, line: ClaimLine, pricing: Pricing) -> LineView:
    unit = _estimate(line, pricing)
    return LineView(
        code=line.code, descriptor=line.descriptor, units=line.units,
        service_date=line.service_date.isoformat(), program=line.program,
        program_name=program_name(line.program), minutes=line.minutes,
        minutes_by_role=roles_text(line.minutes_by_role), consent_date=consent_date(claim, line.program),
        rate=money(unit.amount), rate_year=str(unit.year or line.rate_year or ""),
        amount=money(unit.times(line.units)), basis=_basis(unit, pricing),
    )


def patient_view(claim: ProposedClaim, pricing: Pricing, approval: str = "") -> PatientView:
    """The facts of one claim, formatted once for HTML, PDF and CSV."""
    programs = []
    for program in dict.fromkeys(line.program for line in claim.lines):
        total, by_role = program_minutes(claim, program)
        programs.append((f"{program_name(program)} ({program})", total, roles_text(by_role)))
    diagnoses = tuple(f"{f'{d.code} {d.display}'.strip()} ({d.origin})" for d in claim.diagnoses)
    consents = tuple(f"{program_name(c.program)}: {c.date.isoformat()} ({c.origin})"
                     for c in sorted(claim.consents, key=lambda c: (c.program, c.date)))
    people = tuple((p.label, p.role, p.minutes) for p in claim.performers)
    return PatientView(
        patient_id=claim.patient_id, name=claim.patient_name or claim.patient_id, mrn=claim.patient_mrn or "",
        birth_date=claim.patient_birth_date or "", place_of_service=place_of_service(claim.place_of_service),
        billing_practitioner=person(claim, claim.billing_practitioner),
        supervising_practitioner=person(claim, claim.supervising_practitioner),
        diagnoses=diagnoses, consents=consents, lines=tuple(_line_view(claim, line, pricing) for line in claim.lines),
        programs=tuple(programs), people=people, estimated_total=money(estimated_total(claim, pricing)),
        warnings=claim.warnings, late_entries=len(claim.late_entries), approval=approval,
        mbi=claim.patient_mbi or "", time_log=log_rows(claim), reconciliation=reconciliation(claim),
        care_plan=next((e.removeprefix(CARE_PLAN_EVIDENCE) for e in claim.evidence
                        if e.startswith(CARE_PLAN_EVIDENCE)), ""),
    )


def _summary(claims: list[ProposedClaim], pricing: Pricing) -> dict:
    units: dict[str, int] = {}
    for claim in claims:
        for line in claim.lines:
            units[line.code] = units.get(line.code, 0) + line.units
    return {
        "patients": len(claims),
        "billable": sum(1 for c in claims if c.billable),
        "units": sorted(units.items()),
        "estimated_total": money(sum((estimated_total(c, pricing) for c in claims), Decimal("0.00"))),
    }


def _ordered(claims: list[ProposedClaim]) -> list[ProposedClaim]:
    return sorted(claims, key=lambda c: ((c.patient_name or "").casefold(), c.patient_id))


# ---------------------------------------------------------------- HTML


def superbill_html(claims: list[ProposedClaim], *, organization_name: str, month: str, generated: datetime,
                   pricing: Pricing, approvals: Mapping[str, str] | None = None) -> str:
    """The printable superbill page (autoescaped; no script, no inline style); `approvals` by patient id."""
    ordered = _ordered(claims)
    approvals = approvals or {}
    template = environment().get_template(TEMPLATE)
    return template.render(
        organization_name=organization_name, month=month, month_label=Month.parse(month).label,
        generated=generated.isoformat(timespec="minutes"), estimate_label=estimate_label(pricing),
        locality_estimates=pricing.basis is EstimateBasis.LOCALITY,
        patients=[patient_view(c, pricing, approvals.get(c.patient_id, "")) for c in ordered],
        summary=_summary(ordered, pricing),
        organization_month=len(ordered) > 1,
    )


# ---------------------------------------------------------------- CSV


def neutralise(cell: object) -> object:
    """A text cell a spreadsheet could run as a formula, prefixed with "'"; other values unchanged."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_LEADS):
        return "'" + cell
    return cell


def superbill_csv(claims: list[ProposedClaim], *, pricing: Pricing) -> str:
    """One row per claim line (CSV_COLUMNS), RFC 4180 (CRLF, quoted where needed), formulas neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for claim in _ordered(claims):
        diagnoses = ";".join(d.code for d in claim.diagnoses)
        billing = person(claim, claim.billing_practitioner)
        supervising = person(claim, claim.supervising_practitioner)
        for line in claim.lines:
            unit = _estimate(line, pricing)
            total = unit.times(line.units)
            rate = "" if unit.amount is None else f"{unit.amount:.2f}"
            amount = "" if total is None else f"{total:.2f}"
            row = (claim.month, claim.patient_id, claim.patient_name, claim.patient_mrn or "",
                   claim.patient_birth_date or "", line.code, line.units, line.service_date.isoformat(),
                   claim.place_of_service, line.program, line.minutes, roles_text(line.minutes_by_role),
                   billing, supervising, diagnoses, consent_date(claim, line.program), rate, amount,
                   _basis(unit, pricing), claim.patient_mbi or "", "code") + ("",) * 11
            writer.writerow([neutralise(cell) for cell in row])
        if not claim.lines:
            continue
        for item, log in zip(claim.time_log, log_rows(claim), strict=True):
            cells: tuple[object, ...] = (claim.month, claim.patient_id, claim.patient_name, claim.patient_mrn or "",
                   claim.patient_birth_date or "", "", "", "", claim.place_of_service, item.program, "", "",
                   billing, supervising, "", "", "", "", "", claim.patient_mbi or "", "time", item.date, item.start,
                   item.end, item.minutes, item.activity, log.person, item.role, item.note,
                   ";".join(f"{code}:{mins}" for code, mins in item.counted), item.not_counted, item.why_not)
            writer.writerow([neutralise(cell) for cell in cells])
    return out.getvalue()


# ---------------------------------------------------------------- PDF


def latin1(text: object) -> str:
    """Text the PDF core fonts can show: Latin-1 kept, accents folded (e.g. "ł" -> "l"), the rest "?"."""
    out = []
    for char in str(text):
        if char in _LATIN1_FOLDS:
            out.append(_LATIN1_FOLDS[char])
            continue
        try:
            char.encode("latin-1")
        except UnicodeEncodeError:
            folded = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
            try:
                folded.encode("latin-1")
            except UnicodeEncodeError:
                folded = ""
            out.append(folded or "?")
        else:
            # Control characters other than the line break would corrupt the layout.
            out.append(" " if unicodedata.category(char) == "Cc" and char != "\n" else char)
    return "".join(out)


def letter_pdf(heading: str, label: str = "") -> FPDF:
    """A Letter page PDF with `heading` on top of each page and, at the foot, `label` (if any) and the page count;
    the superbill's and the care plan's patient copy."""
    from fpdf import FPDF  # fpdf2; imported when a PDF is made

    class LetterPDF(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", "B", 9)
            self.set_text_color(90, 90, 90)
            self.cell(0, 5, latin1(heading), new_x="LMARGIN", new_y="NEXT")
            self.set_text_color(0, 0, 0)
            self.ln(2)

        def footer(self) -> None:
            self.set_y(-14)
            self.set_font("Helvetica", "I", 7.5)
            if label:
                self.cell(0, 4, latin1(label), new_x="LMARGIN", new_y="NEXT", align="L")
            self.cell(0, 4, f"Page {self.page_no()} of {{nb}}", align="R")

    return LetterPDF(format="Letter")


def _section(pdf: FPDF, title: str) -> None:
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 10.5)
    pdf.cell(0, 6, latin1(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)


def _pairs(pdf: FPDF, pairs: list[tuple[str, str]]) -> None:
    for label, value in pairs:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(48, 5, latin1(label))
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(0, 5, latin1(value or "-"), new_x="LMARGIN", new_y="NEXT")


def _table(pdf: FPDF, header: tuple[str, ...], rows: list[tuple], widths: tuple[int, ...]) -> None:
    pdf.set_font("Helvetica", "", 8)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=4.2, first_row_as_headings=True) as table:
        table.row([latin1(h) for h in header])
        for row in rows:
            table.row([latin1(cell) for cell in row])
    pdf.set_font("Helvetica", "", 9)


def _patient_page(pdf: FPDF, view: PatientView, month: str, label: str) -> None:
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 13)
    pdf.multi_cell(0, 7, latin1(view.name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    _pairs(pdf, [("Month", Month.parse(month).label), ("Patient id", view.patient_id), ("MRN", view.mrn),
                 ("Medicare id (MBI)", view.mbi or "not on file in the EHR"), ("Birth date", view.birth_date),
                 ("Place of service", view.place_of_service),
                 ("Billing practitioner", view.billing_practitioner),
                 ("Supervising practitioner", view.supervising_practitioner),
                 ("Review", view.approval or "Not approved (draft)")])
    _section(pdf, "Diagnoses")
    pdf.multi_cell(0, 5, latin1("\n".join(view.diagnoses) or "None on the claim"), new_x="LMARGIN", new_y="NEXT")
    _section(pdf, "Consent")
    pdf.multi_cell(0, 5, latin1("\n".join(view.consents) or "No consent on the claim"), new_x="LMARGIN",
                   new_y="NEXT")
    if view.care_plan:
        _section(pdf, "Care plan")
        pdf.multi_cell(0, 5, latin1(view.care_plan), new_x="LMARGIN", new_y="NEXT")
    _section(pdf, "Codes")
    if view.lines:
        _table(pdf, ("Code", "Description", "Units", "Service date", "Minutes (by role)", "Consent",
                     "Est. rate", "Est. amount"),
               [(line.code, line.descriptor, line.units, line.service_date,
                 f"{line.minutes} ({line.minutes_by_role})" if line.minutes_by_role else line.minutes,
                 line.consent_date, f"{line.rate} ({line.rate_year})" if line.rate and line.rate_year else line.rate,
                 line.amount) for line in view.lines],
               (14, 58, 10, 20, 30, 20, 20, 18))
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(0, 6, latin1(f"Estimated total: {view.estimated_total}"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(0, 4, latin1(label + "."), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
    else:
        pdf.cell(0, 5, "Nothing billable this month.", new_x="LMARGIN", new_y="NEXT")
    _section(pdf, "Minutes by program (documented after consent)")
    if view.programs:
        _table(pdf, ("Program", "Minutes", "By role"), [tuple(p) for p in view.programs], (80, 20, 90))
    _section(pdf, "People (minutes counted toward the codes)")
    if view.people:
        _table(pdf, ("Person", "Role", "Minutes"), [tuple(p) for p in view.people], (100, 60, 30))
    if view.time_log:
        _section(pdf, "Itemized time log")
        pdf.set_font("Helvetica", "", 7)
        with pdf.table(col_widths=(16, 17, 9, 18, 25, 30, 20, 28, 25), text_align="LEFT", line_height=3.6,
                       first_row_as_headings=True) as table:
            table.row([latin1(h) for h in ("Date", "Time", "Min", "Program", "Activity", "Person (role)", "Note",
                                           "Counts toward", "Not counted")])
            for row in view.time_log:
                table.row([latin1(cell) for cell in (
                    row.date, f"{row.start}-{row.end}", row.minutes, row.program, row.activity,
                    f"{row.person} ({row.role})", row.note, row.counts_toward, row.not_counted or "-")])
        pdf.set_font("Helvetica", "", 9)
        pdf.ln(1)
        pdf.multi_cell(0, 4.5, latin1("\n".join(view.reconciliation)), new_x="LMARGIN", new_y="NEXT")
    if view.warnings or view.late_entries:
        _section(pdf, "For the biller")
        notes = list(view.warnings)
        if view.late_entries:
            notes.append(f"{view.late_entries} entries were recorded after the month was written back.")
        pdf.multi_cell(0, 5, latin1("\n".join(f"- {w}" for w in notes)), new_x="LMARGIN", new_y="NEXT")


def superbill_pdf(claims: list[ProposedClaim], *, organization_name: str, month: str, generated: datetime,
                  pricing: Pricing, compress: bool = True, approvals: Mapping[str, str] | None = None) -> bytes:
    """The superbill as a PDF: an organization summary first when there are several claims, then one
    patient per page; `approvals` by patient id. `compress=False` leaves the page streams readable."""
    approvals = approvals or {}
    label = estimate_label(pricing)
    pdf = letter_pdf(f"Care management superbill - {organization_name} - {Month.parse(month).label}", label)
    pdf.set_compression(compress)
    pdf.set_creation_date(generated)
    pdf.set_title(latin1(f"Care management superbill, {organization_name}, {Month.parse(month).label}"))
    pdf.set_creator("smart-app")
    pdf.alias_nb_pages()
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_margins(14, 12, 14)
    ordered = _ordered(claims)
    if len(ordered) > 1:
        summary = _summary(ordered, pricing)
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 7, latin1(f"{organization_name}: {Month.parse(month).label}"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 9)
        _pairs(pdf, [("Patients", str(summary["patients"])), ("With billable codes", str(summary["billable"])),
                     ("Units by code", ", ".join(f"{c} x{u}" for c, u in summary["units"])),
                     ("Estimated total", summary["estimated_total"]),
                     ("Generated", generated.isoformat(timespec="minutes"))])
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(0, 4, latin1(label + "."), new_x="LMARGIN", new_y="NEXT")
        _section(pdf, "Patients")
        _table(pdf, ("Patient", "MRN", "Codes", "Estimated total"),
               [(c.patient_name or c.patient_id, c.patient_mrn or "",
                 ", ".join(f"{line.code} x{line.units}" for line in c.lines) or "nothing billable",
                 money(estimated_total(c, pricing))) for c in ordered], (70, 35, 55, 30))
    for claim in ordered:
        _patient_page(pdf, patient_view(claim, pricing, approvals.get(claim.patient_id, "")), claim.month, label)
    if not ordered:
        pdf.add_page()
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(0, 6, "No claims this month.")
    return bytes(pdf.output())
