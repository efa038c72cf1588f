"""Every status and kind a table column holds, as a StrEnum: one spelling, checked by the type and the database.

The values are what the columns have always stored; each column maps its enum with `db.StrEnumType` and carries
a CHECK constraint listing the values (migration 0008), so a misspelt status fails before it is written.
A member is a `str`, so templates and JSON see the plain value.
"""

from __future__ import annotations

from enum import StrEnum


class ClaimStatus(StrEnum):
    """Where a claim version stands in the biller's review."""

    PROPOSED = "proposed"
    HELD = "held"
    APPROVED = "approved"
    # A newer version replaced this one before it was approved.
    SUPERSEDED = "superseded"
    # An approved version a corrected one replaced after approval (what it wrote is retired in the EHR).
    REPLACED = "replaced"
    NOTHING_BILLABLE = "nothing-billable"


class OutboxStatus(StrEnum):
    """Where a resource waiting for the EHR stands."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    # The EHR offers no way for apps to write this resource type (or update it).
    NOT_ACCEPTED = "not-accepted"
    # Never sent: a corrected claim replaced its version first.
    WITHDRAWN = "withdrawn"


class WritebackStatus(StrEnum):
    """Where a consent recorded in the app stands in the EHR."""

    PENDING = "pending"
    WRITTEN = "written"
    NOT_ACCEPTED = "not-accepted"
    FAILED = "failed"


class ConsentKind(StrEnum):
    """A consent row records a consent, or the withdrawal of one."""

    CONSENT = "consent"
    WITHDRAWAL = "withdrawal"


class EntryKind(StrEnum):
    """An original ledger entry, a replacement of an earlier one, or the cancellation of one."""

    ENTRY = "entry"
    AMENDMENT = "amendment"
    VOID = "void"


class TimerOutcome(StrEnum):
    """How a stopped timer ended (a running timer has none)."""

    RECORDED = "recorded"
    DISCARDED = "discarded"
    TOO_SHORT = "too-short"


class RollupBatchStatus(StrEnum):
    """Where one batch of a month's rollup stands: waiting, claimed by a process (leased), or done."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"


class EvidenceKind(StrEnum):
    """A fact the care team records in the app where the EHR holds no element for it (or none the app can read)."""

    # TCM: the date the medication reconciliation was done, and a documented attempt to reach the patient.
    TCM_MEDICATION_RECONCILIATION = "tcm-medication-reconciliation"
    TCM_CONTACT_ATTEMPT = "tcm-contact-attempt"
    # CoCM: the episode's start, which tells the first month from later ones.
    COCM_EPISODE_START = "cocm-episode-start"
    # Qualified Medicare Beneficiary status from the eligibility check (yes or no).
    QMB_STATUS = "qmb-status"
    # A clinician's judgement that a condition is high-risk (PCM).
    CONDITION_HIGH_RISK = "condition-high-risk"
    # A comprehensive care plan on file (established or revised on the date).
    CARE_PLAN = "care-plan"


class CarePlanStatus(StrEnum):
    """A care-plan version: a draft the care team is writing, or the plan a billing practitioner signed."""

    DRAFT = "draft"
    ESTABLISHED = "established"


class EnrollmentKind(StrEnum):
    """What an enrollment event records about a program, besides consent (kept in `consents`)."""

    OFFERED = "offered"
    DECLINED = "declined"
    NOT_CANDIDATE = "not-candidate"


class EnrollmentStatus(StrEnum):
    """A patient's current standing in one program, derived from enrollment events and consents."""

    ENROLLED = "enrolled"
    WITHDRAWN = "withdrawn"
    DECLINED = "declined"
    NOT_CANDIDATE = "not-candidate"
    OFFERED = "offered"
    NONE = "none"
