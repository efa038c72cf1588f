"""Rating-scale questionnaires as data (`rules/questionnaires/*.yaml`): items, answers, scoring and severity bands.

Each file is validated at load: answers score 0, 1, 2 ... in order; item codes are unique; the severity bands
cover every total from 0 to the highest, without gaps or overlaps; the safety item, where there is one, is an
item. `for_rule_set` also checks a questionnaire's total-score LOINC code and highest total against the rule set's
`rating_scales`, since the evaluator counts a scale by that code.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smart_app.paths import data_path
from smart_app.rules.errors import RuleFileError
from smart_app.rules.schema import RuleSet

FOLDER = "questionnaires"
LOINC_CODE = r"^(LA)?\d{1,7}-\d$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(_Strict):
    """One answer option: its score, LOINC answer code and text."""

    score: int = Field(ge=0)
    loinc: str = Field(pattern=LOINC_CODE)
    text: str = Field(min_length=1)


class Item(_Strict):
    """One question: its LOINC code and text."""

    loinc: str = Field(pattern=LOINC_CODE)
    text: str = Field(min_length=1)


class Band(_Strict):
    """A severity band: totals from `low` to `high`, both included."""

    low: int = Field(ge=0)
    high: int = Field(ge=0)
    label: str = Field(min_length=1)


class Questionnaire(_Strict):
    """A scored questionnaire (PHQ-9, GAD-7): every item takes one of the same answers."""

    name: str = Field(min_length=1, max_length=40)
    title: str
    copyright: str
    panel_loinc: str = Field(pattern=LOINC_CODE)
    total_loinc: str = Field(pattern=LOINC_CODE)
    instruction: str
    answers: tuple[Answer, ...] = Field(min_length=2)
    items: tuple[Item, ...] = Field(min_length=1)
    bands: tuple[Band, ...] = Field(min_length=1)
    # The item whose answer above 0 is a safety alert (PHQ-9 item 9), or None.
    safety_item: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Questionnaire:
        if [a.score for a in self.answers] != list(range(len(self.answers))):
            raise ValueError("answers must score 0, 1, 2 ... in order")
        codes = [i.loinc for i in self.items]
        if len(set(codes)) != len(codes):
            raise ValueError("two items share a LOINC code")
        expected = 0
        for band in self.bands:
            if band.low != expected or band.high < band.low:
                raise ValueError(f"severity band {band.label!r} should start at {expected}: bands must cover every "
                                 "total in order, without gaps or overlaps")
            expected = band.high + 1
        if expected - 1 != self.max_total:
            raise ValueError(f"the severity bands end at {expected - 1}, but the highest total is {self.max_total}")
        if self.safety_item is not None and self.safety_item not in codes:
            raise ValueError(f"safety_item {self.safety_item} is not one of the items")
        return self

    @property
    def max_answer(self) -> int:
        """The highest score of one item."""
        return len(self.answers) - 1

    @property
    def max_total(self) -> int:
        """The highest total score."""
        return self.max_answer * len(self.items)

    def answer(self, score: int) -> Answer:
        """The answer option scoring `score` (0 ... max_answer)."""
        return self.answers[score]

    def item_number(self, loinc: str) -> int:
        """The 1-based number of the item with this code."""
        return [i.loinc for i in self.items].index(loinc) + 1

    def band(self, total: int) -> str:
        """The severity band's label for a total score."""
        return next(b.label for b in self.bands if b.low <= total <= b.high)


def _load(path: Path) -> Questionnaire:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RuleFileError(str(path), "", f"cannot read the questionnaire ({err})") from None
    if not isinstance(data, dict):
        raise RuleFileError(str(path), "", "the file must hold a mapping at the top level")
    try:
        return Questionnaire.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RuleFileError(str(path), where, first["msg"].removeprefix("Value error, ")) from None


def load_questionnaires(folder: Path | None = None) -> dict[str, Questionnaire]:
    """Every questionnaire in the folder (default `rules/questionnaires/`), by scale name, validated."""
    where = folder or data_path("rules") / FOLDER
    found: dict[str, Questionnaire] = {}
    for path in sorted(where.glob("*.yaml")):
        questionnaire = _load(path)
        if questionnaire.name in found:
            raise RuleFileError(str(path), "name", f"a second questionnaire named {questionnaire.name}")
        found[questionnaire.name] = questionnaire
    return found


@lru_cache(maxsize=1)
def shipped_questionnaires() -> Mapping[str, Questionnaire]:
    """The shipped questionnaires, loaded once per process."""
    return load_questionnaires()


def for_rule_set(rule_set: RuleSet, questionnaires: Mapping[str, Questionnaire] | None = None
                 ) -> dict[str, Questionnaire]:
    """The questionnaires of the rule set's rating scales, checked against it (RuleFileError on a mismatch)."""
    questionnaires = shipped_questionnaires() if questionnaires is None else questionnaires
    found: dict[str, Questionnaire] = {}
    for name, questionnaire in questionnaires.items():
        scale = rule_set.rating_scales.get(name)
        if scale is None:
            continue
        where = f"{FOLDER}/{name}"
        if not scale.loinc or scale.loinc[0] != questionnaire.total_loinc:
            raise RuleFileError(where, "total_loinc", f"{questionnaire.total_loinc} is not the rule set's first code "
                                                      f"for {name} ({', '.join(scale.loinc) or 'none'})")
        if scale.max_score is not None and scale.max_score != questionnaire.max_total:
            raise RuleFileError(where, "items", f"the highest total is {questionnaire.max_total}, but the rule set "
                                                f"says {scale.max_score} for {name}")
        found[name] = questionnaire
    return found
