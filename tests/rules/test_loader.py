"""Rule-file loading: the shipped file is valid; a broken file names the file and the path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from smart_app.errors import ConfigError
from smart_app.rules import RuleFileError, load_rule_set
from smart_app.rules.document import input_json_schema, schema_path
from smart_app.rules.loader import rule_file_path

SHIPPED = rule_file_path("medicare", 2026)


def _broken(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(SHIPPED.read_text())
    mutate(data)
    out = tmp_path / "broken.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def test_shipped_file_is_valid_and_complete():
    rs = load_rule_set(SHIPPED)
    codes = set(rs.code_family())
    assert {"99490", "99439", "99491", "99437", "99487", "99489", "99424", "99425", "99426",
            "99427", "99484", "99492", "99493", "99494", "G2214", "99495", "99496", "G0556",
            "G0557", "G0558", "G0568", "G0569", "G0570"} <= codes
    for fam in rs.families.values():
        for code in fam.codes.values():
            assert code.sources and code.rate.source in rs.sources
            # Every 2026 rate was read from CMS's relative value file, none from a blog.
            assert code.rate.checked == "cms-file" and code.rate.year == 2026
            assert rs.sources[code.rate.source].kind == "cms_file"
            assert code.max_units_source in rs.sources


def _set(path: list, value):
    def mutate(data):
        node = data
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return mutate


BROKEN = [
    ("negative unit minutes", ["families", "ccm", "codes", "99490", "time", "unit_minutes"], -5,
     "families.ccm.codes.99490.time.unit_minutes"),
    ("unknown source", ["families", "bhi", "codes", "99484", "rate", "source"], "nowhere",
     "unknown source 'nowhere'"),
    ("unknown evidence", ["families", "pcm", "codes", "99424", "evidence"], ["telepathy"],
     "families.pcm.codes.99424.evidence[0]"),
    ("typo field", ["families", "tcm", "codes", "99495", "max_unit"], 1, "max_unit"),
    ("unknown excluded code", ["families", "bhi", "codes", "99484", "exclusions"],
     [{"codes": ["99999"], "scope": "same-practitioner", "source": "cpt_2026"}],
     "unknown code '99999'"),
    ("full counting with a midpoint minimum", ["families", "ccm", "codes", "99490", "time"],
     {"unit_minutes": 20, "min_minutes": 11, "counting": "full"}, "min_minutes equal"),
    ("cap above the NCCI MUE", ["families", "ccm", "codes", "99437", "max_units"], 3,
     "max_units 3 is above the NCCI MUE of 2"),
    ("cap without a source", ["families", "ccm", "codes", "99490", "max_units_source"], "a-blog",
     "families.ccm.codes.99490.max_units_source: unknown source 'a-blog'"),
    ("amount that is not RVU x conversion factor", ["families", "cocm", "codes", "99492", "rate", "amount"],
     149.30, "amount 149.3 is not the RVU total 4.8 x conversion factor 33.4009 = 160.32"),
    ("secondary rate without a note", ["families", "cocm", "codes", "99493", "rate"],
     {"amount": 130, "year": 2026, "source": "cpt_2026", "checked": "secondary"}, "needs its year and a note"),
    ("the old verified flag", ["families", "cocm", "codes", "99493", "rate", "verified"], False, "verified"),
    ("code consent without programs", ["families", "apcm", "codes", "G0570", "consent_programs"], [],
     "code_consent"),
]


@pytest.mark.parametrize(("case", "path", "value", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_file_names_file_and_path(tmp_path, case, path, value, expected):
    bad = _broken(tmp_path, _set(path, value))
    with pytest.raises(RuleFileError) as info:
        load_rule_set(bad)
    assert str(bad) in str(info.value)
    assert expected in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_unquoted_code_keys_are_rejected(tmp_path):
    bad = tmp_path / "ints.yaml"
    bad.write_text(SHIPPED.read_text().replace('"99484":', "99484:"))
    with pytest.raises(RuleFileError, match="families.bhi.codes"):
        load_rule_set(bad)


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("families: [unclosed\n")
    with pytest.raises(RuleFileError, match="line"):
        load_rule_set(bad)
    with pytest.raises(RuleFileError, match="cannot read"):
        load_rule_set(tmp_path / "missing.yaml")


def test_schema_file_matches_the_model():
    assert json.loads(schema_path().read_text()) == input_json_schema()
