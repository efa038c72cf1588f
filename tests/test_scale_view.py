"""The rating-scale section, pure: the forms offered, the safety alert kept in view, each scale's trend."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

from smart_app.ledger.scales import ScaleRecord
from smart_app.rules.facts import RatingScale
from smart_app.rules.loader import default_rule_set
from smart_app.rules.questionnaires import for_rule_set
from smart_app.web.scale_view import scale_section

RULES = default_rule_set()
FORMS = for_rule_set(RULES)
PHQ9 = FORMS["PHQ-9"]
TODAY = date(2026, 12, 6)
CHOICES = (("PHQ-9", 27), ("PHQ-2", 6), ("GAD-7", 21))


def phq9(scale_id: str, day: date, scores: list[int]) -> ScaleRecord:
    return ScaleRecord(scale_id, "org", "pat", "PHQ-9", "44261-6", sum(scores), day, f"{day:%Y-%m}", "Practitioner/n",
                       datetime(day.year, day.month, day.day, 15, tzinfo=UTC), "",
                       tuple(zip((i.loinc for i in PHQ9.items), scores, strict=True)))


def test_forms_total_only_and_a_trend_newest_first_without_the_apps_own_copy() -> None:
    recorded = [phq9("a", date(2026, 12, 2), [1] * 9), phq9("b", date(2026, 12, 5), [2] * 9)]
    from_ehr = [RatingScale("44261-6", date(2026, 11, 8), 17.0, id="ehr-1"),
                RatingScale("44261-6", date(2026, 12, 2), 9.0, id="written-by-app"),
                RatingScale("70274-6", date(2026, 10, 1), 4.0, id="ehr-2")]
    deliveries = {"a": "in the EHR as Observation/written-by-app"}
    section = scale_section(RULES, FORMS, CHOICES, recorded, from_ehr, deliveries, {"written-by-app"}, TODAY)
    assert [q.name for q in section.forms] == ["PHQ-9", "GAD-7"] and section.total_only == (("PHQ-2", 6),)
    trends = {t.scale: t for t in section.trends}
    assert [(p.taken_on.day, p.score, p.band) for p in trends["PHQ-9"].points] == [
        (5, 18, "Moderately severe"), (2, 9, "Mild"), (8, 17, "Moderately severe")]
    assert trends["PHQ-9"].points[1].source.endswith("in the EHR as Observation/written-by-app")
    assert trends["PHQ-9"].points[0].alert == "item 9 positive" and trends["PHQ-9"].points[1].alert == "item 9 positive"
    assert trends["GAD-7"].points[0].source == "EHR (Observation/ehr-2)" and trends["GAD-7"].points[0].band == "Minimal"
    assert section.alert is not None and section.alert.answer == "More than half the days"
    assert "988" in " ".join(section.alert.actions)


def test_the_alert_follows_the_newest_phq9_and_fades_after_two_weeks() -> None:
    positive = phq9("a", date(2026, 12, 1), [1] * 9)
    negative = phq9("b", date(2026, 12, 3), [1] * 8 + [0])
    assert scale_section(RULES, FORMS, (), [positive, negative], [], {}, set(), TODAY).alert is None
    assert scale_section(RULES, FORMS, (), [positive], [], {}, set(), TODAY).alert is not None
    # A later total alone says nothing of item 9: the alert stays.
    total_only = dataclasses.replace(negative, items=())
    assert scale_section(RULES, FORMS, (), [positive, total_only], [], {}, set(), TODAY).alert is not None
    old = dataclasses.replace(positive, taken_on=date(2026, 11, 20))
    assert scale_section(RULES, FORMS, (), [old], [], {}, set(), TODAY).alert is None
