"""Launch contexts, authorization codes, tokens and seen assertion ids, kept in the database."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from smart_app.sandbox.db import Database

LAUNCH_TTL = 600
CODE_TTL = 60
ACCESS_TTL = 3600
ONLINE_REFRESH_TTL = 24 * 3600  # online_access: lives about as long as a user's session


@dataclass
class Context:
    """Who and what a launch, code or token is about."""

    patient: str | None = None
    encounter: str | None = None
    user: str | None = None


@dataclass
class CodeGrant:
    """A stored authorization code, returned once."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    context: Context
    nonce: str | None


@dataclass
class TokenGrant:
    """A live access or refresh token."""

    token: str
    kind: str
    client_id: str
    scope: str
    context: Context
    expires_at: float | None


def random_token() -> str:
    """An opaque, unguessable token."""
    return secrets.token_urlsafe(32)


class AuthState:
    """Every piece of authorization state, in tables so a restarted sandbox keeps working."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_launch(self, context: Context, deny: bool = False) -> str:
        """A launch token bound to `context`, valid for ten minutes."""
        token = random_token()
        self.db.execute(
            "INSERT INTO launches (token, patient, encounter, user, deny, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (token, context.patient, context.encounter, context.user, int(deny),
             time.time() + LAUNCH_TTL),
        )
        return token

    def resolve_launch(self, token: str) -> tuple[Context, bool] | None:
        """(context, deny) of a live launch token, else None."""
        row = self.db.one("SELECT * FROM launches WHERE token=? AND expires_at>?",
                          (token, time.time()))
        if row is None:
            return None
        return Context(row["patient"], row["encounter"], row["user"]), bool(row["deny"])

    def create_code(self, grant: CodeGrant) -> str:
        """A single-use authorization code valid for 60 seconds."""
        code = random_token()
        c = grant.context
        self.db.execute(
            "INSERT INTO codes (code, client_id, redirect_uri, code_challenge, scope, patient,"
            " encounter, user, nonce, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (code, grant.client_id, grant.redirect_uri, grant.code_challenge, grant.scope,
             c.patient, c.encounter, c.user, grant.nonce, time.time() + CODE_TTL),
        )
        return code

    def redeem_code(self, code: str) -> tuple[CodeGrant | None, bool]:
        """(grant, reused): marks the code used; a second use revokes what the first issued."""
        with self.db.transaction():
            row = self.db.one("SELECT * FROM codes WHERE code=?", (code,))
            if row is None:
                return None, False
            if row["used"]:
                # RFC 6749 4.1.2: a replayed code should revoke the tokens it produced.
                self.db.execute("UPDATE tokens SET revoked=1 WHERE code=?", (code,))
                return None, True
            self.db.execute("UPDATE codes SET used=1 WHERE code=?", (code,))
            if row["expires_at"] < time.time():
                return None, False
            return CodeGrant(
                row["client_id"], row["redirect_uri"], row["code_challenge"], row["scope"],
                Context(row["patient"], row["encounter"], row["user"]), row["nonce"],
            ), False

    def issue(self, kind: str, client_id: str, scope: str, context: Context,
              ttl: float | None, code: str | None = None) -> str:
        """Store a new access or refresh token and return it."""
        token = random_token()
        self.db.execute(
            "INSERT INTO tokens (token, kind, client_id, scope, patient, encounter, user, code,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (token, kind, client_id, scope, context.patient, context.encounter, context.user,
             code, None if ttl is None else time.time() + ttl),
        )
        return token

    def lookup(self, token: str, kind: str) -> TokenGrant | None:
        """The live (unrevoked, unexpired) token of this kind, else None."""
        row = self.db.one(
            "SELECT * FROM tokens WHERE token=? AND kind=? AND revoked=0"
            " AND (expires_at IS NULL OR expires_at>?)",
            (token, kind, time.time()),
        )
        if row is None:
            return None
        return TokenGrant(row["token"], row["kind"], row["client_id"], row["scope"],
                          Context(row["patient"], row["encounter"], row["user"]),
                          row["expires_at"])

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token; True when one was live."""
        cur = self.db.execute("UPDATE tokens SET revoked=1 WHERE token=? AND revoked=0", (token,))
        return cur.rowcount > 0

    def remember_jti(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record an assertion id; False when it was seen before (a replay)."""
        with self.db.transaction():
            self.db.execute("DELETE FROM seen_jti WHERE expires_at<?", (time.time() - 600,))
            cur = self.db.execute(
                "INSERT OR IGNORE INTO seen_jti (client_id, jti, expires_at) VALUES (?, ?, ?)",
                (client_id, jti, expires_at),
            )
            return cur.rowcount == 1
