"""The EHR users: the fixture practitioners (care manager first, the default) and people who sign in as a Person."""

from __future__ import annotations

from dataclasses import dataclass

from smart_app.sandbox.references import reference_id
from smart_app.sandbox.store import FhirStore

_ROLE_ORDER = ("care manager", "care coordinator", "nurse", "billing")


@dataclass
class User:
    """Someone who can sign in to the sandbox: a Practitioner (id alone) or another type (`Person/id`)."""

    id: str
    name: str
    role: str

    @property
    def label(self) -> str:
        """How the user picker shows this user."""
        return f"{self.name} ({self.role})" if self.role else self.name

    @property
    def reference(self) -> str:
        """The user as fhirUser names them."""
        return user_reference(self.id)


def user_reference(user: str) -> str:
    """`Practitioner/<id>` for a bare id, the value itself for a typed one such as `Person/<id>`."""
    return user if "/" in user else f"Practitioner/{user}"


def user_exists(store: FhirStore, user: str | None) -> bool:
    """Whether `user` (a Practitioner id or a typed `Person/<id>`) is a known person."""
    if not user:
        return False
    rtype, _, rid = user_reference(user).partition("/")
    return rtype in ("Practitioner", "Person") and store.exists(rtype, rid)


def display_name(resource: dict) -> str:
    """A human name for a Patient or Practitioner."""
    for name in resource.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*(name.get("prefix") or []), *(name.get("given") or []), name.get("family")]
        text = " ".join(str(p) for p in parts if p)
        if text:
            return text
    return str(resource.get("id", "?"))


def _role_text(role: dict) -> str:
    for concept in [*(role.get("code") or []), *(role.get("specialty") or [])]:
        if concept.get("text"):
            return str(concept["text"])
        for coding in concept.get("coding") or []:
            if coding.get("display"):
                return str(coding["display"])
    return ""


def _rank(user: User) -> tuple[int, str]:
    role = user.role.lower()
    for index, word in enumerate(_ROLE_ORDER):
        if word in role:
            return index, user.id
    return len(_ROLE_ORDER), user.id


def list_users(store: FhirStore) -> list[User]:
    """Every practitioner, care manager first, then nurse, then billing, then the rest; then Persons."""
    roles: dict[str, str] = {}
    for role in store.candidates("PractitionerRole"):
        pid = reference_id((role.get("practitioner") or {}).get("reference"), "Practitioner")
        if pid and pid not in roles:
            roles[pid] = _role_text(role)
    users = [User(p["id"], display_name(p), roles.get(p["id"], ""))
             for p in store.candidates("Practitioner")]
    people = [User(f"Person/{p['id']}", display_name(p), "Person") for p in store.candidates("Person")]
    return sorted(users, key=_rank) + sorted(people, key=lambda u: u.id)


def default_user(store: FhirStore) -> str | None:
    """The id of the user a launch runs as when none was picked."""
    users = list_users(store)
    return users[0].id if users else None
