"""The FHIR resource store: one SQLite table of current versions, indexed by (type, patient)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime

from smart_app.sandbox.db import Database
from smart_app.sandbox.references import patient_of

ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
TYPE_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


def now_instant() -> str:
    """The current time as a FHIR instant in UTC."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    """A fresh server-assigned resource id."""
    return str(uuid.uuid4())


class FhirStore:
    """Current versions of every resource, any resourceType, as JSON text."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, rtype: str, rid: str) -> dict | None:
        """The stored resource, or None."""
        text = self.db.scalar("SELECT json FROM resources WHERE type=? AND id=?", (rtype, rid))
        return None if text is None else json.loads(text)

    def exists(self, rtype: str, rid: str) -> bool:
        """Whether a resource of this type and id is stored."""
        return self.db.one("SELECT 1 FROM resources WHERE type=? AND id=?", (rtype, rid)) is not None

    def save(self, resource: dict, keep_meta: bool = False) -> dict:
        """Insert or replace `resource` (id set), bumping meta.versionId/lastUpdated; return it."""
        rtype, rid = resource["resourceType"], resource["id"]
        with self.db.transaction():
            current = self.db.scalar(
                "SELECT version FROM resources WHERE type=? AND id=?", (rtype, rid)
            )
            version = (current or 0) + 1
            meta = dict(resource.get("meta") or {})
            meta["versionId"] = str(version)
            if not (keep_meta and meta.get("lastUpdated")):
                meta["lastUpdated"] = now_instant()
            resource["meta"] = meta
            self.db.execute(
                "INSERT OR REPLACE INTO resources (type, id, version, patient, last_updated, json)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (rtype, rid, version, patient_of(resource), meta["lastUpdated"],
                 json.dumps(resource, separators=(",", ":"))),
            )
        return resource

    def insert_if_absent(self, resource: dict) -> bool:
        """Seed a resource unless one with its type and id exists; True when inserted."""
        with self.db.transaction():
            if self.exists(resource["resourceType"], resource["id"]):
                return False
            self.save(resource, keep_meta=True)
            return True

    def delete(self, rtype: str, rid: str) -> bool:
        """Remove a resource; True when something was deleted."""
        cur = self.db.execute("DELETE FROM resources WHERE type=? AND id=?", (rtype, rid))
        return cur.rowcount > 0

    def candidates(self, rtype: str, patient: str | None = None,
                   ids: list[str] | None = None) -> list[dict]:
        """Resources of a type, narrowed through the indexes by patient and/or ids."""
        sql = "SELECT json FROM resources WHERE type=?"
        params: list = [rtype]
        if patient is not None:
            sql += " AND patient=?"
            params.append(patient)
        if ids is not None:
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            params.extend(ids)
        sql += " ORDER BY rowid"
        return [json.loads(row[0]) for row in self.db.all(sql, tuple(params))]

    def types(self) -> list[str]:
        """Every resource type currently stored."""
        return [row[0] for row in self.db.all("SELECT DISTINCT type FROM resources ORDER BY type")]
