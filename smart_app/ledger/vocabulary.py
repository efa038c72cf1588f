"""The activity vocabulary (`activities.toml`): loaded once, validated, and asked which activity suits which program."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from smart_app.errors import ConfigError
from smart_app.ledger.values import PROGRAMS

DEFAULT_FILE = Path(__file__).resolve().parent / "activities.toml"


@dataclass(frozen=True)
class Activity:
    """One kind of work a person records time for."""

    code: str
    label: str
    programs: tuple[str, ...]


@dataclass(frozen=True)
class Vocabulary:
    """All activities, by code, in file order."""

    activities: tuple[Activity, ...]

    def get(self, code: str) -> Activity | None:
        """The activity with this code, or None."""
        return next((a for a in self.activities if a.code == code), None)

    def label(self, code: str) -> str:
        """How pages name an activity: its label, or the code itself when it is not in the vocabulary."""
        activity = self.get(code)
        return activity.label if activity else code

    def for_program(self, program: str) -> tuple[Activity, ...]:
        """The activities a person can pick for this program, in file order."""
        return tuple(a for a in self.activities if program in a.programs)


def parse_vocabulary(data: dict[str, object], source: str) -> Vocabulary:
    """Validate parsed TOML; `source` names the file in error messages."""
    rows = data.get("activity")
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"{source}: no [[activity]] tables.", "Add at least one activity with code, label, programs.")
    seen: set[str] = set()
    activities = []
    for number, row in enumerate(rows, start=1):
        where = f"{source}: activity #{number}"
        if not isinstance(row, dict):
            raise ConfigError(f"{where} is not a table.", "Write each activity as an [[activity]] table.")
        code, label, programs = row.get("code"), row.get("label"), row.get("programs")
        if not isinstance(code, str) or not code.strip() or not isinstance(label, str) or not label.strip():
            raise ConfigError(f"{where} needs a non-empty code and label.", 'For example code = "record-review".')
        if code in seen:
            raise ConfigError(f"{where}: code {code!r} appears twice.", "Give every activity its own code.")
        if not isinstance(programs, list) or not programs:
            raise ConfigError(f"{where} ({code}) lists no programs.", f"Use some of {', '.join(PROGRAMS)}.")
        unknown = [p for p in programs if p not in PROGRAMS]
        if unknown:
            raise ConfigError(f"{where} ({code}) names unknown programs {unknown}.", f"Use {', '.join(PROGRAMS)}.")
        seen.add(code)
        activities.append(Activity(code, label.strip(), tuple(programs)))
    return Vocabulary(tuple(activities))


def load_vocabulary(path: Path = DEFAULT_FILE) -> Vocabulary:
    """Read and validate an activities file."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the activity vocabulary: {exc}.",
                          "Fix the TOML syntax or the file permissions.") from exc
    return parse_vocabulary(data, str(path))


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    """The vocabulary shipped with the app, read once per process."""
    return load_vocabulary()
