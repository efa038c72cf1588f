"""SMART scopes (v1 and v2): parsing, granting against a client's allowance, and checking access."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

IDENTITY_SCOPES = frozenset(
    {"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
     "offline_access", "online_access"}
)
CONTEXTS = ("patient", "user", "system")
_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)(\?.*)?$")
_V1_LETTERS = {"read": "rs", "write": "cud", "*": "cruds"}
LETTERS = "cruds"


@dataclass(frozen=True)
class ResourceScope:
    """One clinical scope: context, resource type (or *), permitted letters, optional filter."""

    text: str
    context: str
    rtype: str
    letters: frozenset[str]
    query: tuple[tuple[str, str], ...] = ()

    def covers_type(self, rtype: str, letter: str) -> bool:
        """Whether this scope permits `letter` (c r u d s) on `rtype`."""
        return self.rtype in ("*", rtype) and letter in self.letters


def parse_resource_scope(text: str) -> ResourceScope | None:
    """A ResourceScope for `patient/Condition.rs`, `user/*.read` and the like; None otherwise."""
    match = _RESOURCE_SCOPE.match(text)
    if not match:
        return None
    context, rtype, perms, query = match.groups()
    if perms in _V1_LETTERS:
        letters = _V1_LETTERS[perms]
    else:
        # v2 letters must be a subsequence of "cruds" in that order.
        if not re.fullmatch(r"c?r?u?d?s?", perms):
            return None
        letters = perms
    filters = tuple(parse_qsl(query[1:])) if query else ()
    return ResourceScope(text, context, rtype, frozenset(letters), filters)


def split_scopes(scope: str | None) -> list[str]:
    """Scopes as a de-duplicated list, keeping their order."""
    seen: dict[str, None] = {}
    for item in (scope or "").split():
        seen.setdefault(item, None)
    return list(seen)


def _allowed(requested: str, allowed: list[str]) -> bool:
    if requested in allowed:
        return True
    wanted = parse_resource_scope(requested)
    if wanted is None:
        return False
    for text in allowed:
        have = parse_resource_scope(text)
        if (have and not have.query and have.context == wanted.context
                and have.rtype in ("*", wanted.rtype) and wanted.letters <= have.letters):
            return True
    return False


def grant(requested: str, allowed: str, contexts: tuple[str, ...]) -> list[str]:
    """The requested scopes the client may have: known, allowed, and of a permitted context."""
    allowance = split_scopes(allowed)
    granted = []
    for item in split_scopes(requested):
        parsed = parse_resource_scope(item)
        if parsed is None and item not in IDENTITY_SCOPES:
            continue
        if parsed is not None and parsed.context not in contexts:
            continue
        if allowance and not _allowed(item, allowance):
            continue
        granted.append(item)
    return granted


def resource_scopes(scope: str) -> list[ResourceScope]:
    """The clinical scopes within a granted scope string."""
    return [s for s in map(parse_resource_scope, split_scopes(scope)) if s is not None]
