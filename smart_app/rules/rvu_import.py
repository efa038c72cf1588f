"""Write CMS's relative value figures into a rule file, leaving every other byte of it as it was.

`import_rvu(text, ...)` edits the YAML as text rather than dumping it again: the file's comments,
quoting, folded notes and key order are what people read and review, and a YAML round trip (even
ruamel.yaml's) rewraps long flow lists and requotes scalars. PyYAML's composer gives every node's
position, so exactly three kinds of span are rewritten: each code's `rate:` value, the
`conversion_factor` amount and source, and the source entry naming the file. The result is parsed
and validated against the schema before anyone writes it.

A code is imported only from its row without a modifier whose status is payable (`A`, active). A
code the file lacks, one it has only with modifiers, and one with another status (bundled,
restricted, carrier-priced, not valid for Medicare ...) is reported and its rate left as it was.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from smart_app.rules.errors import RuleFileError
from smart_app.rules.loader import parse_rule_set
from smart_app.rules.rvu_file import RvuFile, RvuRow
from smart_app.rules.schema import RuleSet, to_cents

# Status codes whose national amount is payable as it stands (CMS's RVU file readme: A = active).
# R (restricted coverage), T (paid only without other services) and C (carrier priced) are
# reported rather than imported: their amount depends on conditions the rule file does not model.
PAYABLE_STATUSES = ("A",)
CMS_RVU_PAGE = "https://www.cms.gov/medicare/payment/fee-schedules/physician/pfs-relative-value-files"
STATUS_NAMES = {
    "B": "bundled", "C": "carrier priced", "D": "deleted", "E": "excluded from the fee schedule by regulation",
    "F": "deleted, no grace period", "G": "not valid for Medicare", "H": "deleted modifier",
    "I": "not valid for Medicare", "J": "anesthesia service", "M": "measurement code", "N": "non-covered",
    "P": "bundled or excluded", "R": "restricted coverage", "T": "paid only when no other service is",
    "X": "statutory exclusion",
}


@dataclass(frozen=True)
class ImportReport:
    """What an import changed and what it left alone, for the person running it."""

    text: str
    rule_set: RuleSet
    source_key: str
    imported: tuple[str, ...]
    not_imported: tuple[tuple[str, str], ...]  # (code, why)
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


def _get(node: Node, key: str) -> tuple[ScalarNode, Node] | None:
    if not isinstance(node, MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, ScalarNode) and k.value == key:
            return k, v
    return None


def _end(node: Node, text: str) -> int:
    """Where a node's own text ends: block collections end with their last item, scalars before any
    trailing line breaks (a block scalar's end mark runs past them)."""
    if isinstance(node, MappingNode) and not node.flow_style and node.value:
        return _end(node.value[-1][1], text)
    if isinstance(node, SequenceNode) and not node.flow_style and node.value:
        return _end(node.value[-1], text)
    end = node.end_mark.index
    while end > node.start_mark.index and text[end - 1] in " \t\r\n":
        end -= 1
    return end


def _replace_value(key: ScalarNode, value: Node, text: str, rendered: str) -> _Edit:
    """Replace from just after `key` to the end of its value with `:` + rendered."""
    return _Edit(key.end_mark.index, _end(value, text), ":" + rendered)


def _q(value: str) -> str:
    """A double-quoted YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(value, ensure_ascii=False)


def _rvus(work: Decimal, pe: Decimal, mp: Decimal, total: Decimal) -> str:
    return f"{{work: {work}, pe: {pe}, mp: {mp}, total: {total}}}"


def render_rate(row: RvuRow, year: int, source_key: str, indent: int) -> str:
    """A code's `rate:` block (without the key) from its row of the file."""
    pad = " " * indent
    cf = row.conversion_factor
    lines = [
        f"amount: {to_cents(row.total_nonfacility * cf)}",
        f"facility_amount: {to_cents(row.total_facility * cf)}",
        f"year: {year}",
        f"conversion_factor: {cf}",
        f"rvu: {_rvus(row.work, row.pe_nonfacility, row.mp, row.total_nonfacility)}",
        f"facility_rvu: {_rvus(row.work, row.pe_facility, row.mp, row.total_facility)}",
        f"status: {_q(row.status)}",
        f"global_days: {_q(row.global_days)}",
        f"source: {source_key}",
        "checked: cms-file",
    ]
    return "".join(f"\n{pad}{line}" for line in lines)


def source_key(rvu: RvuFile) -> str:
    """The rule file's key for this release of the file, e.g. cms_pprrvu2026_jul_nonqpp."""
    stem = re.sub(r"[^a-z0-9]+", "_", rvu.path.stem.lower()).strip("_")
    return f"cms_{stem}"


def render_source(rvu: RvuFile, indent: int, note: str) -> str:
    """The source entry's fields (without the key) naming the file and its release."""
    pad = " " * indent
    release = f", {rvu.release} release" if rvu.release else ""
    variant = f", {rvu.variant}" if rvu.variant else ""
    title = f"CMS {rvu.year} National Physician Fee Schedule Relative Value File{release}{variant} ({rvu.name})"
    titles = [t for t in rvu.titles if "copyright" not in t.lower()]
    said = f"Imported with `smart-app rules import-rvu` from {rvu.name}."
    fields = [
        "kind: cms_file",
        f"title: {_q(title)}",
        f"citation: {_q('; '.join(titles) or rvu.name)}",
        f"url: {CMS_RVU_PAGE}",
        f"note: {_q(f'{said} {note}'.strip())}",
    ]
    return "".join(f"\n{pad}{f}" for f in fields)


def _why_not(code: str, rvu: RvuFile) -> str | None:
    row = rvu.rows.get(code)
    if row is None:
        if code in rvu.modified_only:
            return f"only rows with a modifier in {rvu.name}; no global row to import"
        return f"not in {rvu.name}"
    if row.status not in PAYABLE_STATUSES:
        name = STATUS_NAMES.get(row.status, "not payable at a national amount")
        return f"status {row.status} ({name}) on line {row.line} of {rvu.name}; not imported"
    return None


def import_rvu(text: str, rule_file: str, rvu: RvuFile, *, note: str = "") -> ImportReport:
    """The rule file's text with the file's figures written in; RuleFileError when it cannot be done."""
    before = parse_rule_set(yaml.safe_load(text), rule_file)
    if rvu.year != before.year:
        raise RuleFileError(rule_file, "year", f"the rule file is for {before.year}, {rvu.name} for {rvu.year}")
    if rvu.variant.upper() == "QPP":
        raise RuleFileError(rule_file, "conversion_factor",
                            f"{rvu.name} is the qualifying-APM file; import the nonQPP file (the standard "
                            "conversion factor) and set conversion_factor.qualifying_apm by hand")
    root = yaml.compose(text)
    assert root is not None  # parse_rule_set accepted it
    key = source_key(rvu)
    edits: list[_Edit] = []
    imported: list[str] = []
    skipped: list[tuple[str, str]] = []
    warnings: list[str] = []
    families = _get(root, "families")
    assert families is not None
    for _, family in families[1].value:
        codes = _get(family, "codes")
        assert codes is not None
        for code_key, code in codes[1].value:
            code_name = code_key.value
            why = _why_not(code_name, rvu)
            if why:
                skipped.append((code_name, why))
                continue
            row = rvu.rows[code_name]
            for setting, total, pe in (("non-facility", row.total_nonfacility, row.pe_nonfacility),
                                       ("facility", row.total_facility, row.pe_facility)):
                if row.work + pe + row.mp != total:
                    warnings.append(f"line {row.line}: {code_name} {setting} total {total} is not work + PE + MP "
                                    f"= {row.work + pe + row.mp}; the total makes the national amount, the "
                                    "parts a locality estimate")
            rate_key, rate_value = _get(code, "rate") or (None, None)
            assert rate_key is not None and rate_value is not None
            edits.append(_replace_value(rate_key, rate_value, text,
                                        render_rate(row, rvu.year, key, rate_key.start_mark.column + 2)))
            imported.append(code_name)
    if imported:
        edits.extend(_conversion_factor_edits(root, text, rule_file, rvu, key))
        edits.append(_source_edit(root, text, rvu, key, note))
    new_text = _apply(text, edits)
    try:
        after = parse_rule_set(yaml.safe_load(new_text), rule_file)
    except RuleFileError as err:
        raise RuleFileError(rule_file, err.path, f"the imported figures would not validate: {err.problem}") from None
    return ImportReport(new_text, after, key, tuple(imported), tuple(skipped), tuple(warnings))


def _conversion_factor_edits(root: Node, text: str, rule_file: str, rvu: RvuFile, key: str) -> list[_Edit]:
    found = _get(root, "conversion_factor")
    amount = _get(found[1], "amount") if found else None
    source = _get(found[1], "source") if found else None
    if amount is None or source is None:
        raise RuleFileError(rule_file, "conversion_factor",
                            "no conversion_factor with amount and source to update; add "
                            "`conversion_factor: {amount: 1, source: <key>}` and import again")
    return [_Edit(amount[1].start_mark.index, _end(amount[1], text), str(rvu.conversion_factor)),
            _Edit(source[1].start_mark.index, _end(source[1], text), key)]


def _source_edit(root: Node, text: str, rvu: RvuFile, key: str, note: str) -> _Edit:
    sources = _get(root, "sources")
    assert sources is not None and isinstance(sources[1], MappingNode) and sources[1].value
    existing = _get(sources[1], key)
    if existing is not None:
        return _replace_value(existing[0], existing[1], text,
                              render_source(rvu, existing[0].start_mark.column + 2, note))
    first = sources[1].value[0][0]
    column = first.start_mark.column
    line_start = first.start_mark.index - column
    entry = " " * column + key + ":" + render_source(rvu, column + 2, note) + "\n"
    return _Edit(line_start, line_start, entry)


def _apply(text: str, edits: list[_Edit]) -> str:
    out = text
    last = len(text) + 1
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        if edit.end > last:
            raise AssertionError(f"overlapping edits at {edit.start}")
        out = out[:edit.start] + edit.text + out[edit.end:]
        last = edit.start
    return out
