"""`smart-app rules import-rvu`: CMS's relative value file into the rule file, comments and all.

The fixture `data/PPRRVU2026_Jul_nonQPP.csv` is in CMS's layout (title lines, a header split over
three rows, one row per HCPCS code and modifier). Its care-management rows carry the figures of
CMS's CY2026 July release as the team's reference extract gives them; the other rows (71046 with
its 26/TC components, 99091, 99213, 99453, G0136) are illustrative figures for the parser, not CMS's.
"""

from __future__ import annotations

import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from smart_app.cli import main as cli_main
from smart_app.rules.loader import load_rule_set, rule_file_path
from smart_app.rules.rates import NATIONAL, RateSettings, estimate
from smart_app.rules.rvu_file import RvuFileError, read_rvu_file
from smart_app.rules.rvu_import import import_rvu

FIXTURE = Path(__file__).parent / "data" / "PPRRVU2026_Jul_nonQPP.csv"
SHIPPED = rule_file_path("medicare", 2026)

# CMS CY2026 national non-facility amounts (the reference table): (CF 33.4009, qualifying APM CF 33.5675).
NATIONAL_AMOUNTS = {
    "99424": ("87.51", "87.95"), "99425": ("61.46", "61.76"), "99426": ("67.80", "68.14"),
    "99427": ("54.11", "54.38"), "99437": ("63.13", "63.44"), "99439": ("50.44", "50.69"),
    "99484": ("57.45", "57.74"), "99487": ("144.29", "145.01"), "99489": ("78.16", "78.55"),
    "99490": ("66.13", "66.46"), "99491": ("89.18", "89.63"), "99492": ("160.32", "161.12"),
    "99493": ("144.96", "145.68"), "99494": ("61.46", "61.76"), "99495": ("220.11", "221.21"),
    "99496": ("298.60", "300.09"), "G0556": ("16.37", "16.45"), "G0557": ("53.78", "54.04"),
    "G0558": ("117.24", "117.82"), "G0568": ("161.66", "162.47"), "G0569": ("145.96", "146.69"),
    "G0570": ("57.78", "58.07"), "G2214": ("60.79", "61.09"),
}


def pre_import_rule_file(tmp_path: Path) -> Path:
    """The shipped rule file as it was before CMS's figures: every rate a secondary-source one."""
    text = SHIPPED.read_text()
    rate = re.compile(r"^( +)rate:\n(?:\1  .*\n)+", re.M)
    old = rate.sub(lambda m: f'{m.group(1)}rate: {{amount: 1.00, year: 2025, source: cpt_2026, checked: secondary, '
                             f'note: "a vendor figure"}}\n', text)
    old = old.replace("  source: cms_pprrvu2026_jul_nonqpp\n  qualifying_apm", "  source: pfs_2026_final\n"
                                                                                "  qualifying_apm")
    start = old.index("  cms_pprrvu2026_jul_nonqpp:\n")
    end = old.index("  pfs_2026_final:\n")
    out = tmp_path / "medicare-2026.yaml"
    out.write_text(old[:start] + old[end:])
    rs = load_rule_set(out)
    assert {rs.code(c).rate.checked for c in rs.code_family()} == {"secondary"}
    return out


def run_cli(*args: str) -> int:
    return cli_main(["rules", "import-rvu", *args])


def test_import_reproduces_every_national_amount_to_the_cent(tmp_path, capsys):
    rules = pre_import_rule_file(tmp_path)
    assert run_cli(str(FIXTURE), "--rules", str(rules)) == 0
    out = capsys.readouterr().out
    assert "imported 23 code(s) from PPRRVU2026_Jul_nonQPP.csv (2026 July release, conversion factor 33.4009)" in out
    rs = load_rule_set(rules)
    assert set(rs.code_family()) == set(NATIONAL_AMOUNTS)
    qualifying = RateSettings(qualifying_apm=True)
    for code, (amount, qp_amount) in NATIONAL_AMOUNTS.items():
        rule = rs.code(code)
        assert rule.rate.checked == "cms-file" and rule.rate.source == "cms_pprrvu2026_jul_nonqpp", code
        assert Decimal(str(rule.rate.amount)).quantize(Decimal("0.01")) == Decimal(amount), code
        assert estimate(rule, rs, NATIONAL).amount == Decimal(amount), code
        assert estimate(rule, rs, qualifying).amount == Decimal(qp_amount), code
    source = rs.sources["cms_pprrvu2026_jul_nonqpp"]
    assert source.kind == "cms_file" and "PPRRVU2026_Jul_nonQPP.csv" in source.title
    assert "July release" in source.title and "RELEASED 06/30/2026" in (source.citation or "")
    assert rs.conversion_factor is not None and rs.conversion_factor.amount == Decimal("33.4009")
    assert rs.conversion_factor.source == "cms_pprrvu2026_jul_nonqpp"


def test_import_writes_rvus_for_both_settings(tmp_path):
    rules = pre_import_rule_file(tmp_path)
    run_cli(str(FIXTURE), "--rules", str(rules))
    rate = load_rule_set(rules).code("99492").rate
    assert (rate.rvu.work, rate.rvu.pe, rate.rvu.mp, rate.rvu.total) == tuple(map(Decimal, ("1.88", "2.78", "0.14",
                                                                                          "4.8")))
    assert (rate.facility_rvu.pe, rate.facility_rvu.total) == (Decimal("0.44"), Decimal("2.46"))
    assert rate.facility_amount == 82.17 and rate.status == "A" and rate.global_days == "XXX"
    assert load_rule_set(rules).code("G0568").rate.global_days == "ZZZ"


def test_comments_and_everything_else_survive(tmp_path):
    rules = pre_import_rule_file(tmp_path)
    before = rules.read_text()
    run_cli(str(FIXTURE), "--rules", str(rules))
    after = rules.read_text()
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert len(comments) > 15
    assert [line for line in after.splitlines() if line.lstrip().startswith("#")] == comments
    # Only rate blocks, the conversion factor and the new source differ; every other line is kept in order.
    kept = [line for line in before.splitlines() if "rate: {amount: 1.00" not in line
            and line not in ("  source: pfs_2026_final",)]
    remaining = iter(after.splitlines())
    assert all(any(line == other for other in remaining) for line in kept)


def test_the_shipped_file_holds_exactly_the_imported_figures(tmp_path):
    copy = tmp_path / "medicare-2026.yaml"
    shutil.copyfile(SHIPPED, copy)
    text = copy.read_text()
    note = re.search(r'note: "Imported with `smart-app rules import-rvu` from PPRRVU2026_Jul_nonQPP.csv\. (.*)"', text)
    assert note
    report = import_rvu(text, str(copy), read_rvu_file(FIXTURE), note=note.group(1))
    assert report.text == text
    assert report.not_imported == ()


def test_codes_missing_or_not_payable_are_reported_and_left_alone(tmp_path, capsys):
    rules = pre_import_rule_file(tmp_path)
    text = FIXTURE.read_text()
    text = re.sub(r"^G2214,.*\n", "", text, flags=re.M)  # missing
    text = re.sub(r"^(99494,,[^,]*,)A,", r"\1I,", text, flags=re.M)  # not valid for Medicare
    text = re.sub(r"^99437,,", "99437,26,", text, flags=re.M)  # only with a modifier
    csv = tmp_path / "PPRRVU2026_Jul_nonQPP.csv"
    csv.write_text(text)
    assert run_cli(str(csv), "--rules", str(rules)) == 0
    out = capsys.readouterr().out
    assert "imported 20 code(s)" in out
    assert "3 code(s) not imported, rates left as they were:" in out
    assert "G2214: not in PPRRVU2026_Jul_nonQPP.csv" in out
    assert re.search(r"99494: status I \(not valid for Medicare\) on line \d+ of PPRRVU2026_Jul_nonQPP.csv", out)
    assert "99437: only rows with a modifier" in out
    rs = load_rule_set(rules)
    for code in ("G2214", "99494", "99437"):
        assert rs.code(code).rate.checked == "secondary" and rs.code(code).rate.amount == 1.00
    assert rs.code("99493").rate.checked == "cms-file"


MALFORMED = [
    ("no header", lambda t: t.replace("HCPCS,MOD,", "CODE,MOD,"), None, "no header row starting with HCPCS"),
    ("missing column", lambda t: t.replace(",PE RVU,NA INDICATOR,PE RVU,", ",PE RVU,NA INDICATOR,PE X,"), 8,
     "the header has no column 'FACILITY PE RVU'"),
    ("non-numeric RVU", lambda t: re.sub(r"^(99490,,[^,]*,A,,)1\.00,", r"\1one,", t, flags=re.M), 24,
     "WORK RVU of 99490 is 'one', not a number of RVUs"),
    ("short row", lambda t: re.sub(r"^(99491,,[^,]*,A,,1\.50),.*$", r"\1", t, flags=re.M), 25,
     "6 columns, fewer than the header's 25"),
    ("repeated code", lambda t: t.replace("99213,", "99453,", 1), 20, "99453 appears again (first on line 13)"),
    ("bad HCPCS", lambda t: t.replace("99213,", "9921,", 1), 13, "'9921' is not a HCPCS code"),
    ("two conversion factors", lambda t: re.sub(r"^(99424,.*?)33\.4009", r"\g<1>32.3465", t, flags=re.M), 14,
     "conversion factor 32.3465 differs from 33.4009 on line 9"),
]


@pytest.mark.parametrize(("case", "change", "line", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_file_is_refused_with_the_line_named(tmp_path, capsys, case, change, line, message):
    rules = pre_import_rule_file(tmp_path)
    before = rules.read_text()
    bad = tmp_path / "PPRRVU2026_Jul_nonQPP.csv"
    bad.write_text(change(FIXTURE.read_text()))
    with pytest.raises(RvuFileError) as info:
        read_rvu_file(bad)
    assert message in str(info.value)
    if line is not None:
        assert f"{bad}: line {line}: " in str(info.value)
    assert run_cli(str(bad), "--rules", str(rules)) == 2
    err = capsys.readouterr().err
    assert message in err and "PPRRVU<year>_<release>_nonQPP.csv" in err
    assert rules.read_text() == before  # nothing written


def test_a_file_for_another_year_or_the_qualifying_apm_file_is_refused(tmp_path, capsys):
    rules = pre_import_rule_file(tmp_path)
    for name, message in (("PPRRVU2025_Oct_nonQPP.csv", "the rule file is for 2026, PPRRVU2025_Oct_nonQPP.csv for "
                                                        "2025"),
                          ("PPRRVU2026_Jul_QPP.csv", "is the qualifying-APM file")):
        other = tmp_path / name
        shutil.copyfile(FIXTURE, other)
        assert run_cli(str(other), "--rules", str(rules)) == 2
        assert message in capsys.readouterr().err


def test_the_fixture_is_read_as_cms_lays_it_out():
    rvu = read_rvu_file(FIXTURE)
    assert (rvu.year, rvu.release, rvu.variant) == (2026, "July", "nonQPP")
    assert rvu.titles[:2] == ("2026 National Physician Fee Schedule Relative Value File July Release",
                              "RELEASED 06/30/2026")
    assert rvu.conversion_factor == Decimal("33.4009")
    # Modifier rows (71046-26, 71046-TC) never stand in for the global row.
    assert rvu.rows["71046"].total_nonfacility == Decimal("1.07") and "71046" not in rvu.modified_only
    assert rvu.rows["99091"].status == "B"
