"""Chronic classification with HCUP CCI + simple_icd_10_cm, and the undetermined paths."""

from __future__ import annotations

import pytest

from smart_app.rules.chronic import classify_icd10cm, is_behavioral

CASES = [
    ("E11.9", "chronic", "HCUP CCI"),
    ("E119", "chronic", "HCUP CCI"),
    ("I10", "chronic", "HCUP CCI"),
    ("J18.9", "not-chronic", "HCUP CCI"),
    ("F32.A", "chronic", "all codes under F32"),     # newer than the 2019 indicator
    ("E11.A", "chronic", "all codes under E11"),
    ("U07.1", "undetermined", "not in HCUP CCI"),     # no indexed sibling to borrow from
    ("XYZ", "undetermined", "not a valid"),
    ("", "undetermined", "not a valid"),
]


@pytest.mark.parametrize(("code", "status", "basis"), CASES, ids=[c[0] or "empty" for c in CASES])
def test_classify(code, status, basis):
    c = classify_icd10cm(code)
    assert c.status == status
    assert basis in c.basis


def test_behavioral():
    assert is_behavioral("F32.A", ("F",), ())
    assert not is_behavioral("E11.9", ("F",), ())
    assert is_behavioral("Z91.19", ("F",), ("Z91.19",))
