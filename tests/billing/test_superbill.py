"""Superbills as HTML, PDF and CSV: content, escaping, formula neutralising and the estimate label."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from decimal import Decimal

from smart_app.billing.superbill import (
    CSV_COLUMNS,
    estimate_label,
    latin1,
    neutralise,
    superbill_csv,
    superbill_html,
    superbill_pdf,
)
from smart_app.billing.values import ClaimLine
from smart_app.paths import data_path
from smart_app.rules.loader import default_rule_set
from smart_app.rules.rates import Locality, Pricing, RateSettings
from tests.billing.claims import ccm_claim

GENERATED = datetime(2026, 4, 1, 8, 30, tzinfo=UTC)
NATIONAL = Pricing(default_rule_set("medicare", 2026))
ESTIMATE_LABEL = estimate_label(NATIONAL)
# Illustrative GPCIs, not a CMS locality.
LOCAL = Pricing(NATIONAL.rule_set, RateSettings(Locality("Test locality", Decimal("1.05"), Decimal("1.2"),
                                                          Decimal("0.8"))))


def two_claims():
    return [ccm_claim(), ccm_claim(patient_id="pat-2", patient_name="Grace Hopper", patient_mrn="MRN-002",
                                   coverage=None)]


# ---------------------------------------------------------------- CSV


def test_csv_has_one_row_per_line_with_every_column():
    rows = list(csv.DictReader(io.StringIO(superbill_csv(two_claims(), pricing=NATIONAL))))
    assert len(rows) == 6
    assert tuple(rows[0]) == CSV_COLUMNS
    first = rows[0]
    assert first["patient_name"] == "Ada Lovelace" and first["mrn"] == "MRN-001"
    assert first["code"] == "99490" and first["units"] == "1" and first["service_date"] == "2026-03-31"
    assert first["place_of_service"] == "11" and first["program"] == "ccm" and first["month"] == "2026-03"
    assert first["diagnoses"] == "E11.9;I10"
    assert first["consent_date"] == "2026-01-15"
    assert first["supervising_practitioner"] == "Dr. Sue Pervisor (Practitioner/dr-2)"
    add_on = rows[1]
    assert add_on["code"] == "99439" and add_on["units"] == "2"
    assert add_on["minutes_by_role"] == "clinical-staff:25;care-manager:20"
    assert add_on["estimated_rate"] == "50.44" and add_on["estimated_amount"] == "100.88"
    g_code = rows[2]
    assert g_code["code"] == "G0556" and g_code["consent_date"] == "2026-02-01"
    assert rows[3]["patient_name"] == "Grace Hopper"


def test_csv_quotes_per_rfc_4180_and_neutralises_formulas():
    claim = ccm_claim(patient_name='=HYPERLINK("http://evil","x"), "Jr"', patient_mrn="+123",
                      patient_id="-2+3", billing_practitioner="@SUM(A1)")
    text = superbill_csv([claim], pricing=NATIONAL)
    assert text.endswith("\r\n") and "\r\n" in text
    rows = list(csv.reader(io.StringIO(text)))
    row = rows[1]
    name, mrn, patient_id = row[2], row[3], row[1]
    assert name == "'" + '=HYPERLINK("http://evil","x"), "Jr"'
    assert mrn == "'+123" and patient_id == "'-2+3" and row[12] == "'@SUM(A1)"
    # The embedded quotes are doubled and the field quoted (RFC 4180 section 2.7).
    assert '"\'=HYPERLINK(""http://evil"",""x""), ""Jr"""' in text
    assert neutralise(5) == 5 and neutralise("ok") == "ok" and neutralise("\tcmd") == "'\tcmd"


def test_csv_of_a_claim_without_lines_is_only_the_header():
    assert superbill_csv([ccm_claim(lines=())], pricing=NATIONAL).splitlines() == [",".join(CSV_COLUMNS)]


# ---------------------------------------------------------------- HTML


def test_html_escapes_a_malicious_patient_name_and_shows_the_estimate_label():
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    html = superbill_html([ccm_claim(patient_name=evil)], organization_name="Clinic & Co", month="2026-03",
                          generated=GENERATED, pricing=NATIONAL)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert "Clinic &amp; Co" in html
    assert ESTIMATE_LABEL in html
    assert "style=" not in html and "<style" not in html
    assert '<link rel="stylesheet" href="/static/superbill.css">' in html
    assert "app.js" not in html


def test_html_shows_the_claim_facts_one_section_per_patient():
    html = superbill_html(two_claims(), organization_name="Clinic", month="2026-03", generated=GENERATED,
                          pricing=NATIONAL)
    assert html.count('<section class="patient"') == 2
    assert "Organization month" in html
    for fact in ("Ada Lovelace", "Grace Hopper", "MRN-001", "1950-12-10", "99490", "99439", "G0556",
                 "E11.9", "I10", "11 (Office)", "Dr. Sue Pervisor", "Practitioner/dr-1", "2026-01-15",
                 "clinical-staff:25;care-manager:20", "Rita Nurse, RN", "$100.88", "March 2026"):
        assert fact in html, fact
    # Money appears only next to the estimate label: one under each patient's codes plus the summary.
    assert html.count(ESTIMATE_LABEL) == 3


def test_print_css_breaks_pages_between_patients():
    css = (data_path("templates") / "static" / "superbill.css").read_text()
    assert "@media print" in css
    assert re.search(r"\.patient \+ \.patient\s*\{\s*break-before: page", css)


# ---------------------------------------------------------------- PDF


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type /Page\b", pdf))


def test_pdf_has_one_page_per_patient_names_and_the_label():
    claims = two_claims()
    pdf = superbill_pdf(claims, organization_name="Clinic", month="2026-03", generated=GENERATED, pricing=NATIONAL,
                         compress=False)
    assert pdf.startswith(b"%PDF")
    assert b"Ada Lovelace" in pdf and b"Grace Hopper" in pdf
    assert b"not a payment amount" in pdf
    flat = pdf.replace(b") Tj (", b"")  # fpdf2 writes the page-count alias as its own text run
    assert b"Page 1 of 3" in flat and b"Page 3 of 3" in flat  # summary page plus one page per patient
    assert _pages(pdf) == 3
    single = superbill_pdf(claims[:1], organization_name="Clinic", month="2026-03", generated=GENERATED,
                           pricing=NATIONAL, compress=False)
    assert _pages(single) == 1 and b"99439" in single and b"G0556" in single


def test_pdf_is_compressed_by_default_and_deterministic():
    args = {"organization_name": "Clinic", "month": "2026-03", "generated": GENERATED, "pricing": NATIONAL}
    compressed = superbill_pdf(two_claims(), **args)
    assert compressed.startswith(b"%PDF") and b"Ada Lovelace" not in compressed
    assert compressed == superbill_pdf(two_claims(), **args)


def test_pdf_survives_text_outside_latin_1():
    claim = ccm_claim(patient_name="Łukasz “Żółw” 山田 ☃ — O’Brien",
                      lines=(ClaimLine("99490", 1, "ccm", "CCM ≥ 20 minutes", 20, {"clinical-staff": 20},
                                       date(2026, 3, 31), rate=66.13, rate_year=2026),))
    pdf = superbill_pdf([claim], organization_name="Clínica Ñandú", month="2026-03", generated=GENERATED,
                        pricing=NATIONAL, compress=False)
    assert pdf.startswith(b"%PDF")
    assert latin1("Łukasz “Żółw” 山田 ☃ — O’Brien") == 'Lukasz "Zólw" ?? ? - O\'Brien'
    assert latin1("Clínica Ñandú") == "Clínica Ñandú"


# ---------------------------------------------------------------- locality estimates


def test_every_format_shows_the_locality_estimate_and_says_which():
    claims = [ccm_claim()]
    # 99490: [(1.00 x 1.05) + (0.91 x 1.2) + (0.07 x 0.8)] x 33.4009 = 73.42; 99439: 1.687 x 33.4009 = 56.35 a unit;
    # G0556: [(0.25 x 1.05) + (0.22 x 1.2) + (0.02 x 0.8)] x 33.4009 = 18.12 (the claim recorded CY2025's $15.20).
    rows = list(csv.DictReader(io.StringIO(superbill_csv(claims, pricing=LOCAL))))
    assert [(r["code"], r["estimated_rate"], r["estimated_amount"], r["estimate_basis"]) for r in rows] == [
        ("99490", "73.42", "73.42", "locality: Test locality"), ("99439", "56.35", "112.70", "locality: Test locality"),
        ("G0556", "18.12", "18.12", "locality: Test locality")]
    html = superbill_html(claims, organization_name="Clinic", month="2026-03", generated=GENERATED, pricing=LOCAL)
    assert "Locality estimate for Test locality (GPCIs: work 1.05, practice expense 1.2, malpractice 0.8)" in html
    assert "$204.24" in html and "$66.13" not in html
    pdf = superbill_pdf(claims, organization_name="Clinic", month="2026-03", generated=GENERATED, pricing=LOCAL,
                        compress=False)
    assert b"Locality estimate for Test locality" in pdf and b"$204.24" in pdf


def test_national_superbill_uses_the_rule_sets_cms_figures():
    rows = list(csv.DictReader(io.StringIO(superbill_csv([ccm_claim()], pricing=NATIONAL))))
    # G0556 was recorded with a CY2025 figure; the superbill prices it from the CY2026 rule set.
    assert rows[2]["estimated_rate"] == "16.37" and rows[2]["estimate_basis"] == "national"


def test_the_superbill_names_the_care_plan_version_in_force():
    from smart_app.billing.proposal import CARE_PLAN_EVIDENCE

    named = "care plan version 2, established 2026-03-04 in the app"
    claims = [ccm_claim(evidence=(CARE_PLAN_EVIDENCE + named,)), ccm_claim(patient_id="pat-2")]
    html = superbill_html(claims, organization_name="Clinic", month="2026-03", generated=GENERATED, pricing=NATIONAL)
    assert html.count("<h3>Care plan</h3>") == 1 and f'<p class="care-plan">{named}</p>' in html
    assert superbill_pdf(claims, organization_name="Clinic", month="2026-03", generated=GENERATED,
                         pricing=NATIONAL)[:5] == b"%PDF-"
