"""A serving process loads its reference data before the first request and keeps it out of the collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from smart_app.rules.chronic import classify_icd10cm
from smart_app.rules.errors import RuleFileError
from smart_app.warmup import prepare_process


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_prepare_process_loads_the_code_tables_and_freezes_the_heap(thawed: None) -> None:
    classify_icd10cm.cache_clear()
    prepare_process(["medicare-2026", "medicare-2026"])
    assert classify_icd10cm.cache_info().currsize >= 1, "the ICD-10-CM tables are loaded before any request"
    assert gc.get_freeze_count() > 10_000, "what is loaded at start-up is no longer walked by the collector"


def test_an_organization_naming_a_bad_rule_set_stops_start_up(thawed: None) -> None:
    with pytest.raises(RuleFileError, match="<payer>-<year>"):
        prepare_process(["medicare"])
    assert gc.get_freeze_count() == 0
