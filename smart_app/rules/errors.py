"""Errors raised by the rules package: a broken rule file or a malformed facts document."""

from __future__ import annotations

from smart_app.errors import ConfigError, SmartAppError


class RuleFileError(ConfigError):
    """A rule file is missing, unreadable, or does not match the schema."""

    title = "Rule file problem"

    def __init__(self, file: str, path: str, problem: str) -> None:
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {problem}",
                         hint="Fix the file and run `smart-app rules check FILE`.")
        self.file = file
        self.path = path
        self.problem = problem


class FactsError(SmartAppError):
    """An evaluate input document is malformed; `path` names the place inside it."""

    title = "Malformed facts document"
    status_code = 400

    def __init__(self, path: str, problem: str, source: str = "") -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{path or '(document)'}: {problem}")
        self.path = path
        self.problem = problem
