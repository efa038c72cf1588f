"""Where each fact came from survives the saved facts (`facts_cache`) that unattended rollups run from."""

from __future__ import annotations

import datetime as dt

from smart_app.rules.facts import Consent, FactSource, PatientFacts, RatingScale
from smart_app.rules.facts_json import facts_from_json, facts_to_json


def test_sources_round_trip_and_older_saved_facts_read_as_the_ehrs() -> None:
    facts = PatientFacts(month="2026-11", consents=(
        Consent("bhi", "active", dt.date(2026, 9, 1), "Consent/1"),
        Consent("ccm", "active", dt.date(2026, 10, 2), "app-consent-1", FactSource.APP)),
        rating_scales=(RatingScale("44261-6", dt.date(2026, 11, 3), 12.0, "app:scale:9", FactSource.APP),))
    saved = facts_to_json(facts)
    assert [c["source"] for c in saved["consents"]] == ["ehr", "app"]
    assert facts_from_json(saved) == facts
    # Facts saved before sources were kept were all read from the EHR (the app's records are added afterwards).
    for part in ("consents", "rating_scales"):
        for item in saved[part]:
            del item["source"]
    older = facts_from_json(saved)
    assert {c.source for c in older.consents} == {FactSource.EHR}
    assert older.rating_scales[0].source is FactSource.EHR
