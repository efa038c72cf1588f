"""One SQLite connection shared by every handler, with the sandbox's tables."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    patient TEXT,
    last_updated TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (type, id)
);
CREATE INDEX IF NOT EXISTS ix_resources_type_patient ON resources (type, patient);
CREATE TABLE IF NOT EXISTS launches (
    token TEXT PRIMARY KEY,
    patient TEXT, encounter TEXT, user TEXT,
    deny INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS codes (
    code TEXT PRIMARY KEY,
    client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL, code_challenge TEXT NOT NULL,
    scope TEXT NOT NULL, patient TEXT, encounter TEXT, user TEXT, nonce TEXT,
    expires_at REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL, scope TEXT NOT NULL,
    patient TEXT, encounter TEXT, user TEXT,
    code TEXT,
    expires_at REAL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_tokens_code ON tokens (code);
CREATE TABLE IF NOT EXISTS seen_jti (
    client_id TEXT NOT NULL, jti TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    pem TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    match TEXT NOT NULL,
    kind TEXT NOT NULL,
    remaining INTEGER NOT NULL,
    delay_s REAL NOT NULL
);
"""


class Database:
    """A single sqlite3 connection guarded by a re-entrant lock; `transaction()` nests."""

    def __init__(self, path: str | None) -> None:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so transactions can nest.
        self._conn = sqlite3.connect(
            path or ":memory:", check_same_thread=False, isolation_level=None
        )
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        with self._lock:
            if path:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all; inner calls join the outer one."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._conn.execute("COMMIT")

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        """Run one statement (inside the current transaction, if any)."""
        with self._lock:
            return self._conn.execute(sql, params)

    def all(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Run a query and fetch every row while holding the lock."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        """Run a query and fetch the first row, or None."""
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def scalar(self, sql: str, params: tuple | dict = ()) -> Any:
        """Run a query and return the first column of the first row, or None."""
        row = self.one(sql, params)
        return None if row is None else row[0]

    def close(self) -> None:
        """Close the connection (the app's shutdown hook)."""
        with self._lock:
            self._conn.close()
