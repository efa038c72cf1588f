"""The app's signing keys and SMART client assertions (private_key_jwt, RS384 or ES384)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from functools import lru_cache

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.crypto import TokenBox
from smart_app.db import utcnow
from smart_app.errors import ConfigError
from smart_app.launch.models import SigningKey

ALGORITHMS = ("RS384", "ES384")
# SMART caps a client assertion's lifetime at five minutes; stay well inside it.
ASSERTION_LIFETIME = timedelta(minutes=4)
DEFAULT_OVERLAP = timedelta(days=7)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def generate_key(db: Session, box: TokenBox, alg: str = "RS384") -> SigningKey:
    """Create a new signing key; the newest unretired key signs from now on."""
    if alg not in ALGORITHMS:
        raise ConfigError(f"Key algorithm {alg!r} is not supported.", f"Use one of {', '.join(ALGORITHMS)}.")
    kid = f"{alg.lower()}-{utcnow():%Y%m%d}-{uuid.uuid4().hex[:8]}"
    params = {"kid": kid, "alg": alg, "use": "sig"}
    key = RSAKey.generate_key(2048, parameters=params) if alg == "RS384" else ECKey.generate_key(
        "P-384", parameters=params)
    row = SigningKey(kid=kid, alg=alg, private_jwk_enc=box.seal_json(key.as_dict(private=True)),
                     public_jwk=key.as_dict(private=False), created_at=utcnow())
    db.add(row)
    db.flush()
    return row


def rotate_keys(db: Session, box: TokenBox, alg: str = "RS384",
                overlap: timedelta = DEFAULT_OVERLAP) -> SigningKey:
    """Make a new key current; older keys stay published (and verifiable) for `overlap`."""
    now = utcnow()
    for old in db.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        old.retired_at, old.expires_at = now, now + overlap
    return generate_key(db, box, alg)


def published_keys(db: Session) -> list[SigningKey]:
    """Keys an EHR may verify against: current ones and retired ones within their overlap."""
    now = utcnow()
    rows = db.scalars(select(SigningKey).order_by(SigningKey.created_at.desc()))
    return [r for r in rows if r.expires_at is None or r.expires_at > now]


def public_jwks(db: Session) -> dict:
    """The JWKS document served at `/.well-known/jwks.json`."""
    return {"keys": [dict(r.public_jwk) for r in published_keys(db)]}


def signing_key(db: Session, kid: str = "") -> SigningKey:
    """The key to sign with: `kid` when the organization names one, else the newest current key."""
    if kid:
        row = db.get(SigningKey, kid)
        if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
            raise ConfigError(f"The signing key {kid!r} named for this organization does not exist or expired.",
                              "Run `smart-app keys list` and set key_id to a current key, or leave it empty.")
        return row
    row = db.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))
                     .order_by(SigningKey.created_at.desc())).first()
    if row is None:
        raise ConfigError("The app has no signing key for private_key_jwt client authentication.",
                          "Run `smart-app keys generate`, then register the JWKS URL with the EHR.")
    return row


@lru_cache(maxsize=16)
def _imported_key(alg: str, private_json: str) -> RSAKey | ECKey:
    # Importing an RSA key costs tens of milliseconds; the key text is immutable, so the parsed
    # form is kept (a cache of derived data, not state: every worker derives the same).
    private = json.loads(private_json)
    return RSAKey.import_key(private) if alg == "RS384" else ECKey.import_key(private)


def client_assertion(row: SigningKey, box: TokenBox, client_id: str, token_url: str) -> str:
    """A signed, single-use client assertion for the token endpoint (SMART Backend/asymmetric auth)."""
    now = utcnow()
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "jti": uuid.uuid4().hex,
              "iat": int(now.timestamp()), "exp": int((now + ASSERTION_LIFETIME).timestamp())}
    key = _imported_key(row.alg, box.open(row.private_jwk_enc))
    header = {"alg": row.alg, "kid": row.kid, "typ": "JWT"}
    return jwt.encode(header, claims, key, algorithms=[row.alg])


def assertion_form(row: SigningKey, box: TokenBox, client_id: str, token_url: str) -> dict[str, str]:
    """The form fields of private_key_jwt client authentication."""
    return {"client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(row, box, client_id, token_url)}
