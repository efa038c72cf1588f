"""Load and validate rule files; find the default file for a payer and year."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from smart_app.paths import data_path
from smart_app.rules.errors import RuleFileError
from smart_app.rules.schema import RuleSet


def _loc_path(loc: tuple[object, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _first_error(file: str, err: ValidationError) -> RuleFileError:
    # Report every problem, anchored at the first one's path, so one run shows all of them.
    lines = []
    first_path = ""
    for e in err.errors(include_url=False):
        # Drop pydantic's internal tags ("function-after[...]") from the location.
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p))
        path = _loc_path(loc)
        first_path = first_path or path
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{path or '(top)'}: {msg}")
    return RuleFileError(file, first_path, "; ".join(lines) if len(lines) > 1
                         else lines[0].split(": ", 1)[-1])


def parse_rule_set(data: object, file: str = "<memory>") -> RuleSet:
    """Validate already-parsed YAML/JSON data as a rule set; errors name `file` and the path."""
    if not isinstance(data, dict):
        raise RuleFileError(file, "", "the file must hold a mapping at the top level")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as err:
        raise _first_error(file, err) from None


def load_rule_set(path: str | Path) -> RuleSet:
    """Read and validate one rule file (YAML)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise RuleFileError(str(p), "", f"cannot read the file ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RuleFileError(str(p), where, f"not valid YAML ({getattr(err, 'problem', err)})"
                            ) from None
    return parse_rule_set(data, str(p))


def rule_file_path(payer: str = "medicare", year: int = 2026) -> Path:
    """Where the rule file for `payer` and `year` lives (`rules/<payer>-<year>.yaml`)."""
    return data_path("rules") / f"{payer}-{year}.yaml"


@lru_cache(maxsize=8)
def default_rule_set(payer: str = "medicare", year: int = 2026) -> RuleSet:
    """The shipped rule set for `payer` and `year`, loaded once per process."""
    path = rule_file_path(payer, year)
    if not path.is_file():
        raise RuleFileError(str(path), "", f"no rule file for payer '{payer}' and year {year}")
    rule_set = load_rule_set(path)
    if rule_set.payer != payer or rule_set.year != year:
        raise RuleFileError(str(path), "payer", f"file says {rule_set.payer} {rule_set.year}, "
                            f"expected {payer} {year}")
    return rule_set


def rule_set_named(name: str) -> RuleSet:
    """The shipped rule set an organization names, as `<payer>-<year>` (e.g. medicare-2026)."""
    payer, _, year = name.rpartition("-")
    if not payer or not year.isdigit():
        raise RuleFileError(name, "", "an organization's rule_set must look like <payer>-<year>, "
                            "e.g. medicare-2026")
    return default_rule_set(payer, int(year))
