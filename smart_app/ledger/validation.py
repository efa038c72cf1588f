"""Checks on what a person asks to record, each failing with a message a clinician can act on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from smart_app.ledger.errors import InvalidEntry, LedgerError
from smart_app.ledger.months import Month
from smart_app.ledger.values import MAX_ENTRY_MINUTES, PROGRAMS, ROLES, SOURCES, EntryInput
from smart_app.ledger.vocabulary import Vocabulary

# Months a person may name (a panel, a rollup, a superbill): no care-management code existed before 2013 (TCM;
# CCM came in 2015), so an earlier year, or one past this century, is a typing error.
FIRST_MONTH, LAST_MONTH = "2000-01", "2099-12"
# Medicare takes a claim up to 12 months after the date of service (42 CFR 424.44(a)(1)); time or a rating scale
# older than that can never bill, and a date that far back is most often a typing error in the year. A day is
# added so the same calendar day of last year is still inside.
MAX_RECORD_AGE = timedelta(days=366)
PROGRAM_LABELS = {"ccm": "CCM", "pcm": "PCM", "bhi": "BHI", "cocm": "CoCM", "tcm": "TCM", "apcm": "APCM"}
_PERFORMER_TYPES = ("Practitioner/", "PractitionerRole/")
MAX_NOTE_CHARS = 4000


def program_label(program: str) -> str:
    return PROGRAM_LABELS.get(program, program)


def local_time(instant: datetime, tz: object) -> str:
    """"Oct 31, 2026 23:30 EDT" on the organization's wall clock."""
    return instant.astimezone(tz).strftime("%b %d, %Y %H:%M %Z")  # type: ignore[arg-type]


def refuse_nul(value: object, what: str, error: type[LedgerError] = InvalidEntry) -> None:
    """Text may not hold the NUL character: PostgreSQL cannot store it and SQLite would, so refuse it on both."""
    if isinstance(value, str) and "\x00" in value:
        raise error(f"{what} contains a NUL character (\\u0000), which the app does not store.",
                    f"Remove it from {what.lower()} and send again; it is often pasted in by accident.")


def earliest_record_day(now: datetime, tz: object) -> date:
    """The first local day whose time or rating scale the app still records (see MAX_RECORD_AGE)."""
    return (now - MAX_RECORD_AGE).astimezone(tz).date()  # type: ignore[arg-type]


def check_work(organization_id: str, patient_id: str, performer: str, role: str, program: str, activity: str,
               vocabulary: Vocabulary) -> None:
    """Who did what for whom: the fields a timer and an entry share."""
    if not organization_id or not patient_id:
        raise InvalidEntry("The entry names no organization or patient.", "Relaunch the app from the patient's chart.")
    if not performer.startswith(_PERFORMER_TYPES) or performer.endswith("/"):
        raise InvalidEntry(f"{performer!r} is not a Practitioner or PractitionerRole reference.",
                           "Relaunch the app from the EHR so it learns who you are (fhirUser).")
    if role not in ROLES:
        raise InvalidEntry(f"Unknown role {role!r}.", f"Choose one of: {', '.join(ROLES)}.")
    if program not in PROGRAMS:
        raise InvalidEntry(f"Unknown program {program!r}.", f"Choose one of: {', '.join(PROGRAMS)}.")
    found = vocabulary.get(activity)
    if found is None:
        raise InvalidEntry(f"Unknown activity {activity!r}.", "Pick one of the activities offered in the list.")
    if program not in found.programs:
        choices = ", ".join(a.label for a in vocabulary.for_program(program))
        raise InvalidEntry(f"“{found.label}” does not count toward {program_label(program)}.",
                           f"Pick an activity for {program_label(program)}: {choices}.")


def check_note(note: str) -> str:
    """A note of at most MAX_NOTE_CHARS characters, without NUL."""
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidEntry(f"The note is {len(note)} characters long; the limit is {MAX_NOTE_CHARS}.",
                           "Shorten the note; put long documents in the chart instead.")
    refuse_nul(note, "The note")
    return note


def check_minutes(minutes: object) -> int:
    """Whole minutes, more than zero and at most one day."""
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise InvalidEntry(f"Minutes must be a whole number; got {minutes!r}.", "Enter whole minutes, for example 15.")
    if minutes <= 0:
        raise InvalidEntry(f"Minutes must be more than zero; you entered {minutes}.",
                           "Enter the minutes you spent. To take back time already recorded, void that entry.")
    if minutes > MAX_ENTRY_MINUTES:
        raise InvalidEntry(f"One entry can hold at most {MAX_ENTRY_MINUTES} minutes (24 hours); "
                           f"you entered {minutes}.", "Check the minutes, or record each day's work separately.")
    return minutes


def check_entry(entry: EntryInput, vocabulary: Vocabulary, now: datetime, tz: object) -> datetime:
    """Validate an entry; returns its start in UTC cut to the whole minute (every entry sits on the minute grid)."""
    check_work(entry.organization_id, entry.patient_id, entry.performer, entry.role, entry.program,
               entry.activity, vocabulary)
    minutes = check_minutes(entry.minutes)
    if entry.source not in SOURCES:
        raise InvalidEntry(f"Unknown source {entry.source!r}.", f"Use one of: {', '.join(SOURCES)}.")
    check_note(entry.note)
    if entry.start.tzinfo is None or entry.start.utcoffset() is None:
        raise InvalidEntry("The start time has no timezone.", "Send the start time with its UTC offset.")
    earliest = earliest_record_day(now, tz)
    # The local date first: a start in year 1 or 9999 cannot even be converted to UTC in some zones.
    if entry.start.date() < earliest:
        raise InvalidEntry(f"This entry is dated {entry.start:%b %d}, {entry.start.year}, more than a year ago: "
                           "Medicare takes claims only within 12 months of the service, so the app does not record "
                           "older time.",
                           "Check the date, especially the year; the earliest day accepted now is "
                           f"{earliest:%b %d, %Y}.")
    if entry.start.date() > now.astimezone(tz).date() + timedelta(days=1):  # type: ignore[arg-type]
        raise InvalidEntry(f"This entry is dated {entry.start:%b %d}, {entry.start.year}, which is in the future.",
                           "Record time once it has been spent: check the date, especially the year.")
    start = entry.start.astimezone(UTC).replace(second=0, microsecond=0)
    end = start + timedelta(minutes=minutes)
    if end > now:
        raise InvalidEntry(f"This entry would end at {local_time(end, tz)}, which is in the future.",
                           "Record time once it has been spent: check the date, the start time and the minutes.")
    return start


def check_reason(reason: str) -> str:
    """A correction must say why."""
    if not reason or not reason.strip():
        raise InvalidEntry("A correction needs a reason.", "Say briefly why the entry is being changed or voided.")
    refuse_nul(reason, "The reason")
    return reason.strip()


def check_month(month: str) -> str:
    """A "YYYY-MM" key from FIRST_MONTH to LAST_MONTH, or an error saying what is accepted."""
    shown = repr(month[:20]) + ("..." if len(month) > 20 else "")
    try:
        Month.parse(month)
    except (ValueError, TypeError) as exc:
        raise InvalidEntry(f"{shown} is not a month.",
                           f"Write the month as YYYY-MM, from {FIRST_MONTH} to {LAST_MONTH}, for example 2026-10.") \
            from exc
    if not FIRST_MONTH <= month <= LAST_MONTH:
        raise InvalidEntry(f"{shown} is outside the months the app keeps, {FIRST_MONTH} to {LAST_MONTH}.",
                           "Check the year.")
    return month
