"""The questionnaires kept as data: the shipped PHQ-9 and GAD-7, and what a broken file is refused for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smart_app.paths import data_path
from smart_app.rules.errors import RuleFileError
from smart_app.rules.loader import default_rule_set
from smart_app.rules.questionnaires import FOLDER, for_rule_set, load_questionnaires


def test_the_shipped_questionnaires_match_the_rule_set() -> None:
    found = for_rule_set(default_rule_set())
    assert set(found) == {"PHQ-9", "GAD-7"}
    phq9, gad7 = found["PHQ-9"], found["GAD-7"]
    assert (phq9.panel_loinc, phq9.total_loinc, phq9.max_total, len(phq9.items)) == ("44249-1", "44261-6", 27, 9)
    assert (gad7.panel_loinc, gad7.total_loinc, gad7.max_total, len(gad7.items)) == ("69737-5", "70274-6", 21, 7)
    assert phq9.safety_item == "44260-8" and phq9.item_number("44260-8") == 9 and gad7.safety_item is None
    assert [a.loinc for a in phq9.answers] == ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]
    assert [phq9.band(t) for t in (0, 4, 5, 9, 10, 14, 15, 19, 20, 27)] == [
        "Minimal", "Minimal", "Mild", "Mild", "Moderate", "Moderate", "Moderately severe", "Moderately severe",
        "Severe", "Severe"]
    assert [gad7.band(t) for t in (4, 5, 10, 15, 21)] == ["Minimal", "Mild", "Moderate", "Severe", "Severe"]
    assert "Pfizer" in phq9.copyright and "No permission required" in gad7.copyright


def broken(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load((data_path("rules") / FOLDER / "phq-9.yaml").read_text(encoding="utf-8"))
    data.update(changes)
    (tmp_path / "phq-9.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("changes, says", [
    ({"bands": [{"low": 0, "high": 9, "label": "Low"}, {"low": 11, "high": 27, "label": "High"}]},
     "should start at 10"),
    ({"bands": [{"low": 0, "high": 20, "label": "All"}]}, "end at 20, but the highest total is 27"),
    ({"safety_item": "12345-6"}, "not one of the items"),
    ({"answers": [{"score": 1, "loinc": "LA6569-3", "text": "a"}, {"score": 0, "loinc": "LA6568-5", "text": "b"}]},
     "score 0, 1, 2"),
    ({"total_loinc": "not-a-code"}, "total_loinc"),
])
def test_a_broken_questionnaire_is_refused_at_load(tmp_path: Path, changes: dict, says: str) -> None:
    with pytest.raises(RuleFileError, match=says):
        load_questionnaires(broken(tmp_path, **changes))


def test_a_total_code_the_rule_set_does_not_count_is_refused(tmp_path: Path) -> None:
    loaded = load_questionnaires(broken(tmp_path, total_loinc="44249-1"))
    with pytest.raises(RuleFileError, match="not the rule set's first code for PHQ-9"):
        for_rule_set(default_rule_set(), loaded)
