"""Request bodies of the JSON API, validated with pydantic so errors name the field."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smart_app.ledger.errors import InvalidEntry
from smart_app.ledger.validation import FIRST_MONTH, LAST_MONTH, check_month
from smart_app.ledger.values import MAX_ENTRY_MINUTES
from smart_app.statuses import EnrollmentKind, EvidenceKind


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL cannot store NUL and SQLite would: refuse it before either sees it, the same on both.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("contains a NUL character (\\u0000), which the app does not store; remove it")
        return value


class TimerStart(_Body):
    """Start a timer for a program and activity."""

    program: str = Field(min_length=2, max_length=10)
    activity: str = Field(min_length=1, max_length=80)
    note: str = Field(default="", max_length=2000)


class TimerStop(_Body):
    """Stop a timer; `confirm_long` counts a timer that ran past the cap, `minutes` adjusts it."""

    confirm_long: bool = False
    minutes: int | None = None
    shared: bool = False
    note: str | None = Field(default=None, max_length=2000)


class EntryCreate(_Body):
    """A manual entry: local date and time in the organization's timezone, or ending now (quick log)."""

    program: str = Field(min_length=2, max_length=10)
    activity: str = Field(min_length=1, max_length=80)
    date: dt.date | None = None
    time: dt.time | None = None
    ending_now: bool = False
    # With ending_now: the instant the work ended, when the person chose to place it before time it overlaps.
    ends_at: dt.datetime | None = None
    minutes: int
    note: str = Field(default="", max_length=2000)
    shared: bool = False
    allow_closed_month: bool = False

    @field_validator("ends_at")
    @classmethod
    def _with_offset(cls, ends_at: dt.datetime | None) -> dt.datetime | None:
        if ends_at is not None and ends_at.tzinfo is None:
            raise ValueError("ends_at needs a UTC offset, e.g. 2026-12-06T10:30:00Z")
        return ends_at

    @field_validator("minutes")
    @classmethod
    def _at_most_a_day(cls, minutes: int) -> int:
        # Checked here too, before "ending now" subtracts them from the clock (the ledger's check comes later).
        if minutes > MAX_ENTRY_MINUTES:
            raise ValueError(f"one entry holds at most {MAX_ENTRY_MINUTES} minutes (24 hours); you entered {minutes}")
        return minutes


class EntryAmend(EntryCreate):
    """A correction that replaces an entry, with the reason; without a note it keeps the original's."""

    reason: str = Field(min_length=3, max_length=500)
    note: str | None = Field(default=None, max_length=2000)  # type: ignore[assignment]


class EntryVoid(_Body):
    """Cancel an entry, with the reason."""

    reason: str = Field(min_length=3, max_length=500)
    allow_closed_month: bool = False


class ConsentCreate(_Body):
    """Consent obtained for a program, with the elements CMS expects explained."""

    program: str = Field(min_length=2, max_length=10)
    method: str = Field(pattern="^(verbal|written)$")
    explained_availability: bool = False
    explained_cost_sharing: bool = False
    explained_right_to_stop: bool = False
    explained_one_practitioner: bool = False
    obtained_on: dt.date
    note: str = Field(default="", max_length=2000)


class ConsentWithdraw(_Body):
    """The patient's withdrawal of a consent."""

    on: dt.date
    method: str = Field(default="verbal", pattern="^(verbal|written)$")
    note: str = Field(default="", max_length=2000)


class AttestationCreate(_Body):
    """A clinician's statement that an undetermined condition is (or is not) chronic."""

    condition_id: str = Field(min_length=1, max_length=200)
    code: str = Field(default="", max_length=100)
    chronic: bool
    note: str = Field(default="", max_length=2000)


class EvidenceCreate(_Body):
    """A fact for the rules the EHR holds no readable element for: a TCM step, a CoCM episode start, QMB status,
    a condition's high-risk judgement, a care plan on file."""

    kind: EvidenceKind
    subject: str = Field(default="", max_length=200)
    date: dt.date | None = None
    value: bool | None = None
    note: str = Field(default="", max_length=2000)


class EnrollmentCreate(_Body):
    """A program offered, declined (with the reason) or not for the patient (with the reason), on a date."""

    program: str = Field(min_length=2, max_length=10)
    status: EnrollmentKind
    date: dt.date
    reason: str = Field(default="", max_length=500)


class ScaleCreate(_Body):
    """A validated rating scale administered to the patient: its name in the rule set, the date, and its answers
    item by item (item LOINC code -> score; the app scores them) or, for a scale without a form, the total."""

    scale: str = Field(min_length=1, max_length=40, examples=["PHQ-9"])
    score: int | None = Field(default=None, ge=0)
    items: dict[str, int] | None = Field(default=None, max_length=40, examples=[{"44250-9": 1, "44255-8": 2}])
    date: dt.date
    note: str = Field(default="", max_length=2000)


class ReviewNote(_Body):
    """A biller's note on an approval or hold."""

    note: str = Field(default="", max_length=2000)


class BatchApproval(_Body):
    """Several claims approved in one action (each checked and audited on its own)."""

    claim_ids: list[str] = Field(min_length=1, max_length=500)
    note: str = Field(default="", max_length=2000)


class MonthRun(_Body):
    """Run the rollup of a month."""

    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description=f"YYYY-MM, from {FIRST_MONTH} to {LAST_MONTH}")
    source: str = Field(default="ehr", pattern="^(ehr|cache)$")

    @field_validator("month")
    @classmethod
    def _kept_month(cls, month: str) -> str:
        try:
            return check_month(month)
        except InvalidEntry as exc:
            raise ValueError(f"{exc.message} {exc.hint}") from exc


class CarePlanDraft(_Body):
    """A draft of the comprehensive care plan, as the editor writes it (one item per line)."""

    template: str = Field(default="", max_length=60)
    problems: str = Field(max_length=20000)
    expected_outcome: str = Field(max_length=4000)
    prognosis: str = Field(max_length=4000)
    goals: str = Field(max_length=20000)
    symptom_management: str = Field(max_length=4000)
    interventions: str = Field(max_length=20000)
    medication_management: str = Field(max_length=4000)
    community_services: str = Field(max_length=4000)
    coordination: str = Field(max_length=4000)
    allergies: str = Field(default="", max_length=4000)
    review_every_months: int = Field(ge=1, le=12)
    # Time spent on the plan, logged as care-plan activity for the person (start: local time today; without
    # one, the minutes end now) toward the program chosen.
    minutes: int | None = Field(default=None, ge=0, le=1440)
    started_at: dt.time | None = None
    program: str = Field(default="", max_length=10)


class CarePlanSign(_Body):
    """The billing practitioner's signature on the latest draft (who and when are the request's), with the minutes
    spent reviewing and establishing it, logged like a draft's."""

    minutes: int | None = Field(default=None, ge=0, le=1440)
    started_at: dt.time | None = None
    program: str = Field(default="", max_length=10)
