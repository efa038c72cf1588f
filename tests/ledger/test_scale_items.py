"""Scales recorded item by item: scored, kept in the questionnaire's order, inside the audit chain; rows written
before migration 0015 still verify. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import session_factory, transaction, upgrade
from smart_app.launch.models import OrganizationRow
from smart_app.ledger.audit import SCALE_RECORDED, record_event
from smart_app.ledger.coverage import _store, row_digest, verify
from smart_app.ledger.records import ScaleRow
from smart_app.ledger.scales import InvalidScale, record_scale, scales_for
from smart_app.rules.loader import rule_set_named
from smart_app.rules.questionnaires import for_rule_set
from tests.databases import empty_database, engine_for
from tests.ledger.conftest import NOW, NURSE, ORG, TZ

PHQ9 = ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8")


def phq9(db: Session, scores: list[int], **kwargs: object):  # noqa: ANN201 - the ScaleRecord
    rule_set = rule_set_named("medicare-2026")
    # Given in reverse order: the record keeps the questionnaire's.
    items = dict(reversed(list(zip(PHQ9, scores, strict=True))))
    return record_scale(db, rule_set, ORG, "pat-1", "PHQ-9", None, date(2026, 11, 3), NURSE, TZ, now=NOW,
                        items=items, questionnaire=for_rule_set(rule_set)["PHQ-9"], **kwargs)


def test_items_are_scored_kept_in_order_and_covered(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as db:
        made = phq9(db, [0, 1, 2, 3, 0, 1, 2, 3, 1])
    assert made.score == 13 and made.answered("44260-8") == 1
    with factory() as db:
        (stored,) = scales_for(db, ORG, "pat-1")
    assert [code for code, _ in stored.items] == list(PHQ9)
    assert stored.items == made.items
    with transaction(factory) as db:
        report = verify(db)
    assert report.ok, [str(p) for p in report.problems]
    with transaction(factory) as db:
        db.execute(update(ScaleRow).where(ScaleRow.id == made.id).values(items={"44250-9": 3}))
    with transaction(factory) as db:
        assert ("rating_scales", made.id, "row-edited") in {(p.table, p.row_id, p.kind) for p in verify(db).problems}


def test_nothing_is_recorded_when_an_item_is_wrong(factory: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidScale, match="Item 9 of the PHQ-9"), transaction(factory) as db:
        phq9(db, [0, 1, 2, 3, 0, 1, 2, 3, 7])
    with factory() as db:
        assert scales_for(db, ORG, "pat-1") == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_scale_recorded_before_0015_still_verifies(backend: str, tmp_path: Path, pg_template) -> None:
    when = datetime(2026, 11, 3, 15, tzinfo=UTC)
    values = dict(id="s-old", organization_id="a", patient_id="p", scale="PHQ-9", loinc="44261-6", score=12,
                  taken_on=date(2026, 11, 3), month="2026-11", recorded_by=NURSE, recorded_at=when, note="")
    with empty_database(backend, tmp_path) as url, engine_for(url) as engine:
        upgrade(engine, "0014_care_plans")
        sessions = session_factory(engine)
        with transaction(sessions) as db:
            db.execute(insert(OrganizationRow).values(id="a", name="A", issuer="https://ehr.example.org/fhir",
                                                      client_id="a", client_auth="public", config={}, updated_at=when))
            db.execute(insert(ScaleRow).values(**values))
            # Covered as the app covered it then: a digest over the columns the table had.
            covers = [("rating_scales", "s-old", row_digest("rating_scales", values))]
            event = record_event(db, actor=NURSE, action=SCALE_RECORDED, subject="Patient/p", organization_id="a",
                                 now=when, detail={"covers": [list(c) for c in covers]})
            _store(db, event.seq, covers)
        upgrade(engine)
        with transaction(sessions) as db:
            report = verify(db)
        assert report.ok, [str(p) for p in report.problems]
        assert report.ledger_rows_checked == 1
