"""What the capture forms offer first: the program and activity this person last used for this patient."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CaptureDefaults:
    """The programs in the order offered (the default first) and the last activity used per program."""

    programs: tuple[str, ...]
    # None when no time-based program applies: the person chooses (never a silent TCM or APCM default).
    program: str | None
    activities: dict[str, str] = field(default_factory=dict)


def capture_defaults(programs: Sequence[str], time_based: Iterable[str],
                     recent: Sequence[tuple[str, str]]) -> CaptureDefaults:
    """The program last used by the person among the time-based ones offered, else the first time-based one."""
    timed = set(time_based)
    usable = [p for p in programs if p in timed]
    activities: dict[str, str] = {}
    for program, activity in recent:  # newest first: keep each program's latest
        activities.setdefault(program, activity)
    last = next((p for p, _ in recent if p in usable), None)
    default = last or (usable[0] if usable else None)
    # The default first; the other time-based programs next; the programs not counted in minutes last.
    ordered = ([default] if default else []) + [p for p in usable if p != default] + \
        [p for p in programs if p not in timed]
    return CaptureDefaults(programs=tuple(ordered), program=default,
                           activities={p: a for p, a in activities.items() if p in programs})
