"""Validated rating scales (PHQ-9, GAD-7 ...) the care team administered and recorded in the app.

BHI and CoCM need a validated rating scale in the service month; when the EHR holds none (a PHQ-9 taken by
phone and never charted), the score recorded here counts. A scale with a questionnaire (`rules/questionnaires/`)
is recorded item by item and scored by the app; any other scale as its total. Append-only: a wrong score is
corrected by recording the right one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.db import utcnow
from smart_app.ledger.audit import SCALE_RECORDED
from smart_app.ledger.consents import check_person
from smart_app.ledger.coverage import record_rows
from smart_app.ledger.errors import LedgerError
from smart_app.ledger.months import zone
from smart_app.ledger.records import ScaleRow
from smart_app.ledger.validation import MAX_NOTE_CHARS, earliest_record_day, refuse_nul
from smart_app.rules.facts import FactSource, RatingScale
from smart_app.rules.questionnaires import Questionnaire
from smart_app.rules.schema import RuleSet


class InvalidScale(LedgerError):
    """The rating scale cannot be recorded as given."""

    title = "The rating scale was not recorded"


@dataclass(frozen=True)
class ScaleRecord:
    """One rating scale as stored; `recorded_by` is a Practitioner or PractitionerRole reference."""

    id: str
    organization_id: str
    patient_id: str
    scale: str
    loinc: str
    score: int
    taken_on: date
    month: str
    recorded_by: str
    recorded_at: datetime
    note: str
    # (item LOINC code, score) in the questionnaire's order; empty for a total-only score.
    items: tuple[tuple[str, int], ...] = ()

    def answered(self, loinc: str) -> int | None:
        """The score given to the item with this code, or None (not recorded item by item)."""
        return dict(self.items).get(loinc)


def _record(row: ScaleRow) -> ScaleRecord:
    items = tuple((str(code), int(score)) for code, score in (row.items or {}).items())
    return ScaleRecord(row.id, row.organization_id, row.patient_id, row.scale, row.loinc, row.score, row.taken_on,
                       row.month, row.recorded_by, row.recorded_at, row.note, items)


def safety_answer(record: ScaleRecord, questionnaire: Questionnaire | None) -> int | None:
    """The score of the questionnaire's safety item (PHQ-9 item 9) when answered above 0, else None."""
    if questionnaire is None or questionnaire.safety_item is None:
        return None
    answer = record.answered(questionnaire.safety_item)
    return answer if answer else None


def score_items(questionnaire: Questionnaire, items: object) -> tuple[tuple[str, int], ...]:
    """The answers (item LOINC code -> score) checked against the questionnaire, in its order; InvalidScale
    naming the item that is missing, unknown or out of range."""
    name, highest = questionnaire.name, questionnaire.max_answer
    if not isinstance(items, Mapping):
        raise InvalidScale(f"The {name} answers must be given per item (item code -> score).",
                           "Answer every item of the form.")
    known = {item.loinc for item in questionnaire.items}
    unknown = [str(code) for code in items if code not in known]
    if unknown:
        raise InvalidScale(f"{unknown[0]!r} is not an item of the {name}.",
                           f"Answer the {name}'s {len(known)} items by their LOINC codes.")
    scored = []
    for number, item in enumerate(questionnaire.items, start=1):
        value = items.get(item.loinc)
        if value is None:
            raise InvalidScale(f"Item {number} of the {name} ({item.text}) is not answered.",
                               f"Choose one answer for item {number}; every item counts toward the total.")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= highest:
            raise InvalidScale(f"Item {number} of the {name} ({item.text}) must be scored 0 to {highest}; "
                               f"got {value!r}.", f"Choose one of the answers for item {number}.")
        scored.append((item.loinc, value))
    return tuple(scored)


def recordable_scales(rule_set: RuleSet) -> dict[str, tuple[str, int]]:
    """Scale name -> (total-score LOINC code, highest score), for the scales the app can record."""
    return {name: (scale.loinc[0], scale.max_score) for name, scale in rule_set.rating_scales.items()
            if scale.loinc and scale.max_score is not None}


def record_scale(session: Session, rule_set: RuleSet, organization_id: str, patient_id: str, scale: str,
                 score: object, taken_on: date, by: str, timezone: str, note: str = "",
                 now: datetime | None = None, *, items: object = None,
                 questionnaire: Questionnaire | None = None) -> ScaleRecord:
    """Record a scale administered on the local date `taken_on` (not in the future): item by item (`items`, item
    LOINC code -> score, scored with `questionnaire`; `score` then None or the same total), or as its total."""
    now = now or utcnow()
    known = recordable_scales(rule_set)
    if scale not in known:
        raise InvalidScale(f"{scale!r} is not a rating scale the app can record.",
                           f"Choose one of {', '.join(known)}.")
    loinc, highest = known[scale]
    scored: tuple[tuple[str, int], ...] = ()
    if items is None and score is None and questionnaire is not None and questionnaire.name == scale:
        raise InvalidScale(f"The {scale} was sent with neither its answers nor a total score.",
                           "Answer each question; the app adds up the score.")
    if items is not None:
        if questionnaire is None or questionnaire.name != scale:
            raise InvalidScale(f"The app has no item-by-item form for the {scale}.",
                               "Record its total score instead.")
        scored = score_items(questionnaire, items)
        total = sum(value for _, value in scored)
        if score is not None and score != total:
            raise InvalidScale(f"The {scale} items add up to {total}, not {score!r}.",
                               "Leave the total out: the app scores the items.")
        score = total
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= highest:
        raise InvalidScale(f"A {scale} total score is a whole number from 0 to {highest}; got {score!r}.",
                           f"Enter the total of the {scale} as scored.")
    today = now.astimezone(zone(timezone)).date()
    if not isinstance(taken_on, date) or taken_on > today:
        raise InvalidScale(f"The {scale} cannot be dated {taken_on}: that is in the future.",
                           "Enter the date it was administered, today or earlier.")
    earliest = earliest_record_day(now, zone(timezone))
    if taken_on < earliest:
        raise InvalidScale(f"The {scale} cannot be dated {taken_on}: that is more than a year ago, and a scale counts "
                           "only toward its own month's claim, which Medicare takes within 12 months.",
                           f"Check the date, especially the year; the earliest day accepted now is "
                           f"{earliest:%b %d, %Y}.")
    try:
        check_person(by, "The clinician recording it,")
    except LedgerError as exc:
        raise InvalidScale(exc.message, exc.hint) from exc
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise InvalidScale(f"The note must be text of at most {MAX_NOTE_CHARS} characters.", "Shorten the note.")
    refuse_nul(note, "The note", InvalidScale)
    row = ScaleRow(id=str(uuid.uuid4()), organization_id=organization_id, patient_id=patient_id, scale=scale,
                   loinc=loinc, score=score, taken_on=taken_on, month=f"{taken_on:%Y-%m}", recorded_by=by,
                   recorded_at=now, note=note.strip(), items=dict(scored) if scored else None)
    session.add(row)
    detail: dict[str, object] = {"scale": scale, "score": score, "date": taken_on.isoformat(), "id": row.id}
    if scored:
        detail["items"] = dict(scored)
    record_rows(session, [row], actor=by, action=SCALE_RECORDED, subject=f"Patient/{patient_id}",
                organization_id=organization_id, now=now, detail=detail)
    return _record(row)


def scales_for(session: Session, organization_id: str, patient_id: str, month: str | None = None) -> list[ScaleRecord]:
    """The patient's recorded scales (of one month), oldest first."""
    query = select(ScaleRow).where(ScaleRow.organization_id == organization_id, ScaleRow.patient_id == patient_id)
    if month:
        query = query.where(ScaleRow.month == month)
    return [_record(r) for r in session.scalars(query.order_by(ScaleRow.taken_on, ScaleRow.recorded_at))]


def facts_scales(records: list[ScaleRecord]) -> tuple[RatingScale, ...]:
    """The evaluator's view of recorded scales (ids prefixed `app:` so evidence says where they came from)."""
    return tuple(RatingScale(code=r.loinc, date=r.taken_on, score=float(r.score), id=f"app:scale:{r.id}",
                             source=FactSource.APP) for r in records)
