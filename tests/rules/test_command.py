"""The command-line contract: check, evaluate, exit code 2 on malformed input."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from smart_app.rules.command import main, register
from smart_app.rules.loader import rule_file_path

DOC = {
    "month": "2026-03",
    "patient": {
        "conditions": [
            {"id": "c1", "code": "E11.9", "system": "http://hl7.org/fhir/sid/icd-10-cm",
             "clinical_status": "active"},
            {"id": "c2", "code": "I10", "system": "http://hl7.org/fhir/sid/icd-10-cm",
             "clinical_status": "active"},
            {"id": "c3", "system": "http://hl7.org/fhir/sid/icd-10-cm",
             "clinical_status": "active"},
            {"id": "c4", "code": "x", "system": "urn:local", "clinical_status": "active"},
        ],
        "consents": [{"program": "ccm", "status": "active", "date": "2026-01-05", "id": "k1"}],
        "rating_scales": [],
        "discharges": [],
        "care_plans": [{"status": "active", "date": "2026-01-05"}],
        "initiating_visit": "2025-12-01",
        "complexity": "low",
        "episodes": [],
    },
    "time": [{"program": "ccm", "minutes": 20, "performer": "clinical-staff",
              "date": "2026-03-02"}],
}


def _write(tmp_path: Path, doc: object) -> Path:
    p = tmp_path / "facts.json"
    p.write_text(json.dumps(doc))
    return p


def test_evaluate_via_subprocess(tmp_path):
    out = subprocess.run([sys.executable, "-m", "smart_app.rules.command", "evaluate",
                          str(_write(tmp_path, DOC))], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["codes"] == [{"code": "99490", "units": 1, "program": "ccm", "minutes": 20,
                                "minutes_by_role": {"clinical-staff": 20},
                                "national_rate": 66.13, "rate_year": 2026}]
    progs = {p["program"] for p in result["not_billable"]}
    assert "bhi" in progs and all(p["reasons"] for p in result["not_billable"])
    # Messy conditions were skipped with findings naming them, not crashes.
    assert any("condition c3" in f for f in result["findings"])
    assert any("condition c4" in f for f in result["findings"])


def test_malformed_document_exits_2_naming_the_path(tmp_path, capsys):
    bad = json.loads(json.dumps(DOC))
    bad["time"][0]["performer"] = "janitor"
    assert main(["evaluate", str(_write(tmp_path, bad))]) == 2
    err = capsys.readouterr().err
    assert "time[0].performer" in err


MALFORMED = [
    ({"patient": {}}, "month"),
    ({**DOC, "month": "2026-13"}, "month"),
    ({**DOC, "patient": {**DOC["patient"], "initiating_visit": "yesterday"}},
     "patient.initiating_visit"),
    ({**DOC, "patient": {**DOC["patient"], "consents": [{"program": "ccm"}]}},
     "patient.consents[0].status"),
    ({**DOC, "extra": 1}, "extra"),
    ([1, 2], "(document)"),
]


def test_malformed_cases(tmp_path, capsys):
    for doc, where in MALFORMED:
        assert main(["evaluate", str(_write(tmp_path, doc))]) == 2
        assert where in capsys.readouterr().err


def test_not_json_exits_2(tmp_path, capsys):
    p = tmp_path / "x.json"
    p.write_text("{nope")
    assert main(["evaluate", str(p)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_check_command(tmp_path, capsys):
    assert main(["check", str(rule_file_path("medicare", 2026))]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "2 questionnaires: GAD-7, PHQ-9" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\npayer: medicare\n")
    assert main(["check", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_register_adds_rules_command(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="smart-app")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["rules", "evaluate", str(_write(tmp_path, DOC)), "--rules",
                              str(rule_file_path("medicare", 2026))])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["codes"][0]["code"] == "99490"
