"""PatientFacts as JSON and back, so facts read from the EHR can be kept for unattended rollups."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from smart_app.rules.facts import (
    Attestation,
    CarePlan,
    Condition,
    Consent,
    Discharge,
    Episode,
    FactSource,
    PatientFacts,
    RatingScale,
)

_PARTS: dict[str, type] = {"conditions": Condition, "consents": Consent, "rating_scales": RatingScale,
                           "discharges": Discharge, "care_plans": CarePlan, "episodes": Episode,
                           "attestations": Attestation}
_DATE_FIELDS = {"onset", "attested_at", "date", "contact_date", "face_to_face_date",
                "medication_reconciliation_date", "start", "initiating_visit"}


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def facts_to_json(facts: PatientFacts) -> dict[str, Any]:
    """JSON-safe form of the facts (dates as ISO strings)."""
    plain: dict[str, Any] = _plain(dataclasses.asdict(facts))
    return plain


def _revive(kind: type, data: dict[str, Any]) -> Any:
    values = {}
    for name, value in data.items():
        if name in _DATE_FIELDS and isinstance(value, str):
            value = dt.date.fromisoformat(value)
        elif name == "contact_attempts":
            value = tuple(dt.date.fromisoformat(v) for v in value)
        elif name == "source":
            value = FactSource(value)
        values[name] = value
    return kind(**values)


def facts_from_json(data: dict[str, Any]) -> PatientFacts:
    """Inverse of `facts_to_json`."""
    values: dict[str, Any] = {name: tuple(_revive(kind, item) for item in data.get(name) or ())
                              for name, kind in _PARTS.items()}
    visit = data.get("initiating_visit")
    return PatientFacts(month=data.get("month"), initiating_visit=dt.date.fromisoformat(visit) if visit else None,
                        complexity=data.get("complexity"), qmb=data.get("qmb"),
                        findings=tuple(data.get("findings") or ()), **values)
