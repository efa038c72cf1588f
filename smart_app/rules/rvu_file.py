"""Read CMS's national physician fee schedule relative value file (PPRRVU<year>_<release>_nonQPP.csv).

The file as CMS ships it: a few title lines (the release's name, "RELEASED mm/dd/yyyy", copyright
notices), then a header split over several rows (",,,STATUS,..." above "HCPCS,MOD,DESCRIPTION,CODE,..."),
then one row per HCPCS code and modifier. Columns are found by their header words joined down the
header rows ("NON-FAC" over "PE RVU" is "NON-FAC PE RVU"), so a release that moves a column still
reads. Anything that does not fit (no header, a missing column, a non-numeric RVU, a repeated code)
is refused with the line it is on; nothing is guessed.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from smart_app.errors import ConfigError

# Header words of the columns used, as joined down CMS's header rows.
HCPCS, MODIFIER, STATUS = "HCPCS", "MOD", "STATUS CODE"
WORK, PE_NONFAC, PE_FAC, MP = "WORK RVU", "NON-FAC PE RVU", "FACILITY PE RVU", "MP RVU"
TOTAL_NONFAC, TOTAL_FAC, GLOBAL, CONV = "NON-FACILITY TOTAL", "FACILITY TOTAL", "GLOB DAYS", "CONV FACTOR"
COLUMNS = (HCPCS, MODIFIER, STATUS, WORK, PE_NONFAC, PE_FAC, MP, TOTAL_NONFAC, TOTAL_FAC, GLOBAL, CONV)
NUMERIC = (WORK, PE_NONFAC, PE_FAC, MP, TOTAL_NONFAC, TOTAL_FAC, CONV)

_HCPCS_CODE = re.compile(r"^[0-9A-Z]{5}$")
_FILE_NAME = re.compile(r"^PPRRVU(?P<year>\d{4})_(?P<release>[A-Za-z]+)(?:_(?P<variant>nonQPP|QPP))?\.csv$",
                        re.IGNORECASE)
_TITLE_YEAR = re.compile(r"\b(?P<year>(19|20)\d{2})\b.*RELATIVE VALUE FILE", re.IGNORECASE)
_TITLE_RELEASE = re.compile(r"\b(?P<release>[A-Za-z]+) RELEASE\b", re.IGNORECASE)


class RvuFileError(ConfigError):
    """CMS's relative value file is not in the layout CMS ships, or a row in it is malformed."""

    title = "Relative value file problem"

    def __init__(self, file: str, line: int | None, problem: str, hint: str = "") -> None:
        where = f"{file}: line {line}" if line else file
        super().__init__(f"{where}: {problem}",
                         hint or "Use the PPRRVU<year>_<release>_nonQPP.csv file from CMS's PFS Relative Value "
                                 "Files download, unchanged.")
        self.file, self.line, self.problem = file, line, problem


@dataclass(frozen=True)
class RvuRow:
    """One HCPCS code and modifier as the file gives it."""

    line: int
    hcpcs: str
    modifier: str
    status: str
    work: Decimal
    pe_nonfacility: Decimal
    pe_facility: Decimal
    mp: Decimal
    total_nonfacility: Decimal
    total_facility: Decimal
    global_days: str
    conversion_factor: Decimal


@dataclass(frozen=True)
class RvuFile:
    """A parsed relative value file: which release it is, and its rows without a modifier."""

    path: Path
    year: int
    release: str
    variant: str  # "nonQPP", "QPP", or "" when neither the name nor the titles say
    titles: tuple[str, ...]
    conversion_factor: Decimal
    rows: dict[str, RvuRow]  # HCPCS -> its row without a modifier
    modified_only: frozenset[str]  # codes that appear only with a modifier (26, TC ...)

    @property
    def name(self) -> str:
        """The file's name, as the rule file cites it."""
        return self.path.name


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RvuFileError(str(path), None, f"cannot read the file ({err.strerror})",
                           "Check the path and the file's permissions.") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # CMS writes the file in a Windows code page; only descriptions use the extra characters.
        return data.decode("latin-1")


def _cells(row: list[str]) -> list[str]:
    return [cell.strip() for cell in row]


def _header_names(rows: list[list[str]]) -> list[str]:
    width = max(len(r) for r in rows)
    names = []
    for col in range(width):
        words = [r[col] for r in rows if col < len(r) and r[col]]
        names.append(re.sub(r"\s+", " ", " ".join(words)).upper())
    return names


def _release(path: Path, titles: list[str]) -> tuple[int, str, str]:
    """(year, release, variant) from CMS's file name, else from the title lines."""
    named = _FILE_NAME.match(path.name)
    # The title spells the release out ("July Release"); the name abbreviates it ("Jul").
    release = next((m["release"].capitalize() for t in titles if (m := _TITLE_RELEASE.search(t))), "")
    if named:
        return int(named["year"]), release or named["release"].capitalize(), named["variant"] or ""
    year = next((int(m["year"]) for t in titles if (m := _TITLE_YEAR.search(t))), None)
    if year is None:
        raise RvuFileError(str(path), None, "cannot tell which year's file this is: the name is not "
                           "PPRRVU<year>_<release>_nonQPP.csv and no title line names the year",
                           "Keep CMS's file name, e.g. PPRRVU2026_Jul_nonQPP.csv.")
    return year, release, ""


def _number(value: str, column: str, line: int, file: str, code: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number < 0:
        raise RvuFileError(file, line, f"{column} of {code} is {value!r}, not a number of RVUs"
                           if column != CONV else f"{column} of {code} is {value!r}, not a conversion factor")
    return number


def read_rvu_file(path: str | Path) -> RvuFile:
    """Parse CMS's relative value file; RvuFileError names the line of the first problem."""
    p = Path(path)
    file = str(p)
    reader = csv.reader(io.StringIO(_decode(p), newline=""))
    numbered: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            numbered.append((reader.line_num, _cells(row)))
    except csv.Error as err:
        raise RvuFileError(file, reader.line_num, f"not readable as CSV ({err})") from None
    header_at = next((i for i, (_, row) in enumerate(numbered) if row and row[0].upper() == HCPCS), None)
    if header_at is None:
        raise RvuFileError(file, None, "no header row starting with HCPCS: this is not CMS's relative value "
                                       "file layout")
    start = header_at
    # The header's upper rows are the ones just above it with many cells; title lines hold one or two.
    while start > 0 and sum(1 for c in numbered[start - 1][1] if c) >= 3:
        start -= 1
    header_line = numbered[header_at][0]
    titles = [" ".join(c for c in row if c) for _, row in numbered[:start] if any(row)]
    names = _header_names([row for _, row in numbered[start:header_at + 1]])
    index: dict[str, int] = {}
    for col, name in enumerate(names):
        if name in COLUMNS and name in index:
            raise RvuFileError(file, header_line, f"two columns are headed {name!r}")
        index.setdefault(name, col)
    missing = [c for c in COLUMNS if c not in index]
    if missing:
        raise RvuFileError(file, header_line, f"the header has no column {', '.join(repr(m) for m in missing)} "
                                              f"(read as: {', '.join(n for n in names if n)})")
    year, release, variant = _release(p, titles)
    needed = max(index[c] for c in COLUMNS) + 1
    rows: dict[str, RvuRow] = {}
    modified: set[str] = set()
    seen: dict[tuple[str, str], int] = {}
    factor: tuple[Decimal, int] | None = None
    for line, row in numbered[header_at + 1:]:
        if not any(row):
            continue
        if len(row) < needed:
            raise RvuFileError(file, line, f"{len(row)} columns, fewer than the header's {needed}")
        code, modifier = row[index[HCPCS]].upper(), row[index[MODIFIER]].upper()
        if not _HCPCS_CODE.match(code):
            raise RvuFileError(file, line, f"{row[index[HCPCS]]!r} is not a HCPCS code")
        if (code, modifier) in seen:
            raise RvuFileError(file, line, f"{code}{' modifier ' + modifier if modifier else ''} appears again "
                                           f"(first on line {seen[code, modifier]})")
        seen[code, modifier] = line
        values = {c: _number(row[index[c]], c, line, file, code) for c in NUMERIC}
        cf = values[CONV]
        if factor is None:
            factor = (cf, line)
        elif cf != factor[0]:
            raise RvuFileError(file, line, f"conversion factor {cf} differs from {factor[0]} on line {factor[1]}")
        if modifier:
            modified.add(code)
            continue
        rows[code] = RvuRow(line=line, hcpcs=code, modifier="", status=row[index[STATUS]].upper(),
                            work=values[WORK], pe_nonfacility=values[PE_NONFAC], pe_facility=values[PE_FAC],
                            mp=values[MP], total_nonfacility=values[TOTAL_NONFAC],
                            total_facility=values[TOTAL_FAC], global_days=row[index[GLOBAL]].upper(),
                            conversion_factor=cf)
    if factor is None:
        raise RvuFileError(file, header_line, "no rows after the header")
    return RvuFile(path=p, year=year, release=release, variant=variant, titles=tuple(titles),
                   conversion_factor=factor[0], rows=rows, modified_only=frozenset(modified - set(rows)))
