"""Pure: the rating-scale section of the patient page: the forms offered, the safety alert, the trend of scores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from smart_app.ledger.scales import ScaleRecord, safety_answer
from smart_app.rules.facts import RatingScale
from smart_app.rules.questionnaires import Questionnaire
from smart_app.rules.schema import RuleSet

CRISIS_LINE = "988 Suicide & Crisis Lifeline (call or text 988)"


@dataclass(frozen=True)
class SafetyAlert:
    """What the person must see at once when a safety item (PHQ-9 item 9) is answered above 0."""

    scale: str
    item: int
    question: str
    answer: str
    score: int
    taken_on: dt.date
    summary: str
    actions: tuple[str, ...]

    def to_json(self) -> dict:
        """As the API returns it."""
        return {"scale": self.scale, "item": self.item, "question": self.question, "answer": self.answer,
                "score": self.score, "date": self.taken_on.isoformat(), "summary": self.summary,
                "actions": list(self.actions)}


@dataclass(frozen=True)
class TrendPoint:
    """One past score: when, the total, its severity band (where the scale has one), and where it came from."""

    taken_on: dt.date
    score: int | None
    band: str
    source: str
    # "item 9 positive" where the safety item was answered above 0, else "".
    alert: str = ""


@dataclass(frozen=True)
class ScaleTrend:
    """A scale's past scores, newest first."""

    scale: str
    title: str
    points: tuple[TrendPoint, ...]


@dataclass(frozen=True)
class ScaleSection:
    """The page's rating-scale section."""

    forms: tuple[Questionnaire, ...]
    total_only: tuple[tuple[str, int], ...]
    trends: tuple[ScaleTrend, ...]
    alert: SafetyAlert | None
    alert_delivery: str = ""


def safety_alert(record: ScaleRecord, questionnaire: Questionnaire | None) -> SafetyAlert | None:
    """The alert for a scale whose safety item was answered above 0, else None.

    Conservative on purpose: it says what was answered and points to the practice's protocol, not a diagnosis.
    """
    score = safety_answer(record, questionnaire)
    if score is None or questionnaire is None or questionnaire.safety_item is None:
        return None
    number = questionnaire.item_number(questionnaire.safety_item)
    question = next(i.text for i in questionnaire.items if i.loinc == questionnaire.safety_item)
    answered = questionnaire.answer(score).text
    return SafetyAlert(
        scale=record.scale, item=number, question=question, answer=answered, score=score, taken_on=record.taken_on,
        summary=f"Safety alert: {record.scale} item {number} (\u201c{question}\u201d) was answered "
                f"\u201c{answered}\u201d on {record.taken_on:%b %d, %Y}.",
        actions=("Follow your practice's suicide-risk protocol now.",
                 "Make sure a clinician assesses the patient today; if the patient is in immediate danger, call 911.",
                 f"The {CRISIS_LINE} is available to the patient at any time."))


def _band(questionnaire: Questionnaire | None, score: float | None) -> str:
    if questionnaire is None or score is None or score != int(score) or not 0 <= score <= questionnaire.max_total:
        return ""
    return questionnaire.band(int(score))


def scale_section(rule_set: RuleSet, questionnaires: Mapping[str, Questionnaire], choices: Iterable[tuple[str, int]],
                  recorded: Iterable[ScaleRecord], from_ehr: Iterable[RatingScale], deliveries: Mapping[str, str],
                  written_ids: Iterable[str], today: dt.date) -> ScaleSection:
    """The section: forms for scales with a questionnaire, the total-only form for the rest, each scale's trend
    (the app's records and the EHR's results, those the app wrote itself once), and the newest PHQ-9's alert.

    `deliveries`: app scale id -> where its write-back stands; `written_ids`: the EHR ids of what the app wrote.
    """
    offered = list(choices)
    forms = tuple(questionnaires[name] for name, _ in offered if name in questionnaires)
    total_only = tuple((name, highest) for name, highest in offered if name not in questionnaires)
    by_code = {code: name for name, scale in rule_set.rating_scales.items() for code in scale.loinc}
    points: dict[str, list[TrendPoint]] = {}
    records = list(recorded)
    for record in records:
        questionnaire = questionnaires.get(record.scale) if record.items else None
        where = deliveries.get(record.id, "")
        flagged = safety_alert(record, questionnaire)
        points.setdefault(record.scale, []).append(TrendPoint(
            record.taken_on, record.score, _band(questionnaire, record.score),
            "Recorded in the app" + (" item by item" if record.items else " (total only)") + (f"; {where}" if where
                                                                                              else ""),
            f"item {flagged.item} positive" if flagged else ""))
    skip = set(written_ids)
    for result in from_ehr:
        name = by_code.get(result.code)
        if name is None or (result.id and result.id in skip):
            continue
        score = int(result.score) if result.score is not None and result.score == int(result.score) else None
        points.setdefault(name, []).append(TrendPoint(result.date, score, _band(questionnaires.get(name), result.score),
                                                      f"EHR (Observation/{result.id})"))
    trends = tuple(ScaleTrend(name, rule_set.rating_scales[name].title,
                              tuple(sorted(found, key=lambda p: p.taken_on, reverse=True)))
                   for name, found in points.items() if name in rule_set.rating_scales)
    alert, delivery = None, ""
    # The newest given item by item: a total alone says nothing of the safety item.
    newest = max((r for r in records if r.items and r.scale in questionnaires and questionnaires[r.scale].safety_item),
                 key=lambda r: (r.taken_on, r.recorded_at), default=None)
    if newest is not None and newest.taken_on >= today - dt.timedelta(days=14):
        # Shown until a newer one is recorded, for two weeks: the page must not hide it after a reload.
        alert = safety_alert(newest, questionnaires[newest.scale])
        delivery = deliveries.get(newest.id, "")
    return ScaleSection(forms, total_only, tuple(sorted(trends, key=lambda t: t.scale)), alert, delivery)
