"""Checks on what a person asks to record, each failing with a message a clinician can act on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from smart_app.ledger.errors import InvalidEntry
from smart_app.ledger.values import MAX_ENTRY_MINUTES, PROGRAMS, ROLES, SOURCES, EntryInput
from smart_app.ledger.vocabulary import Vocabulary

PROGRAM_LABELS = {"ccm": "CCM", "pcm": "PCM", "bhi": "BHI", "cocm": "CoCM", "tcm": "TCM", "apcm": "APCM"}
_PERFORMER_TYPES = ("Practitioner/", "PractitionerRole/")
MAX_NOTE_CHARS = 4000


def program_label(program: str) -> str:
    return PROGRAM_LABELS.get(program, program)


def local_time(instant: datetime, tz: object) -> str:
    """"Oct 31, 2026 23:30 EDT" on the organization's wall clock."""
    return instant.astimezone(tz).strftime("%b %d, %Y %H:%M %Z")  # type: ignore[arg-type]


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
    if len(entry.note) > MAX_NOTE_CHARS:
        raise InvalidEntry(f"The note is {len(entry.note)} characters long; the limit is {MAX_NOTE_CHARS}.",
                           "Shorten the note; put long documents in the chart instead.")
    if entry.start.tzinfo is None or entry.start.utcoffset() is None:
        raise InvalidEntry("The start time has no timezone.", "Send the start time with its UTC offset.")
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
    return reason.strip()

