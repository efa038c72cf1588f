"""Frozen values that cross rooms: what callers pass in and what the ledger hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from smart_app.statuses import EntryKind, TimerOutcome

ROLES = ("clinical-staff", "billing-practitioner", "care-manager", "psychiatric-consultant")
PROGRAMS = ("ccm", "pcm", "bhi", "cocm", "tcm", "apcm")
SOURCES = ("timer", "manual", "import")
MAX_ENTRY_MINUTES = 24 * 60
DEFAULT_TIMER_CAP_MINUTES = 90


@dataclass(frozen=True)
class EntryInput:
    """What a person asks to record. `performer` is a FHIR reference (Practitioner/... or PractitionerRole/...)."""

    organization_id: str
    patient_id: str
    performer: str
    role: str
    program: str
    activity: str
    start: datetime
    minutes: int
    note: str = ""
    source: str = "manual"
    # Deliberately counted although the same person has other time recorded in the same interval.
    shared: bool = False


@dataclass(frozen=True)
class Entry:
    """One row of the ledger as stored; `amended_by`/`voided_by` name the row that corrected it, if any."""

    id: str
    organization_id: str
    patient_id: str
    performer: str
    role: str
    program: str
    activity: str
    start: datetime
    minutes: int
    month: str
    note: str
    source: str
    shared: bool
    kind: EntryKind
    corrects_id: str | None
    reason: str
    recorded_by: str
    recorded_at: datetime
    late: bool
    split_group: str | None
    timer_id: str | None
    amended_by: str | None = None
    voided_by: str | None = None

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)

    @property
    def effective(self) -> bool:
        """Counts toward billing: not a void and not replaced by a later correction."""
        return self.kind != EntryKind.VOID and self.amended_by is None and self.voided_by is None

    def to_input(self) -> EntryInput:
        """The fields a caller can change in an amendment (`dataclasses.replace` it)."""
        return EntryInput(self.organization_id, self.patient_id, self.performer, self.role, self.program,
                          self.activity, self.start, self.minutes, self.note, self.source, self.shared)


@dataclass(frozen=True)
class RecordResult:
    """The outcome of recording or correcting: the rows written and a sentence for the UI."""

    entries: tuple[Entry, ...]
    message: str
    late: bool = False

    @property
    def split(self) -> bool:
        return len(self.entries) > 1


@dataclass(frozen=True)
class PatientMonth:
    """A patient's month: `entries` with corrections applied, `history` every row ever written, oldest first."""

    organization_id: str
    patient_id: str
    month: str
    locked: bool
    entries: tuple[Entry, ...]
    history: tuple[Entry, ...]


@dataclass(frozen=True)
class MinutesLine:
    """Minutes of one program and performer role; `shared_minutes` is the part marked as shared time."""

    program: str
    role: str
    minutes: int
    shared_minutes: int = 0


@dataclass(frozen=True)
class MonthMinutes:
    """Effective minutes of a patient-month per program and role: the billing evaluator's input."""

    organization_id: str
    patient_id: str
    month: str
    lines: tuple[MinutesLine, ...] = field(default_factory=tuple)

    def total(self, program: str, roles: tuple[str, ...] | None = None) -> int:
        """Minutes of a program, optionally only those of some roles."""
        return sum(line.minutes for line in self.lines
                   if line.program == program and (roles is None or line.role in roles))

    def by_program(self) -> dict[str, int]:
        return {program: self.total(program) for program in sorted({line.program for line in self.lines})}


@dataclass(frozen=True)
class TimerInput:
    """What a person starts a timer for; the entry it yields gets these fields."""

    organization_id: str
    patient_id: str
    performer: str
    role: str
    program: str
    activity: str
    note: str = ""


@dataclass(frozen=True)
class Timer:
    """A server-side timer. `outcome` is None while it runs."""

    id: str
    organization_id: str
    patient_id: str
    performer: str
    role: str
    program: str
    activity: str
    note: str
    started_at: datetime
    stopped_at: datetime | None
    outcome: TimerOutcome | None
    closed_by: str | None
    minutes: int | None

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    def elapsed_minutes(self, now: datetime) -> int:
        """Whole minutes run so far (or until it stopped)."""
        until = self.stopped_at or now
        return max(0, int((until - self.started_at).total_seconds() // 60))


@dataclass(frozen=True)
class StopResult:
    """The outcome of stopping a timer: the timer as closed, the entries it produced, and a sentence."""

    timer: Timer
    entries: tuple[Entry, ...]
    message: str
    late: bool = False


@dataclass(frozen=True)
class MonthLock:
    """A patient-month whose claim was approved: later entries there are late and flagged to the biller."""

    organization_id: str
    patient_id: str
    month: str
    locked_by: str
    locked_at: datetime
