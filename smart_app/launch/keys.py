"""The app's signing keys and SMART client assertions (private_key_jwt, RS384 or ES384)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from functools import lru_cache

from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import ECKey, KeyParameters, RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from smart_app.crypto import TokenBox
from smart_app.db import utcnow
from smart_app.errors import ConfigError
from smart_app.launch.models import SigningKey

ALGORITHMS = ("RS384", "ES384")
# SMART caps a client assertion's lifetime at five minutes; four leave a minute for the EHR's clock to run ahead.
ASSERTION_LIFETIME = timedelta(minutes=4)
DEFAULT_OVERLAP = timedelta(days=7)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def generate_key(db: Session, box: TokenBox, alg: str = "RS384") -> SigningKey:
    """Create a new signing key; the newest unretired key signs from now on."""
    if alg not in ALGORITHMS:
        raise ConfigError(f"Key algorithm {alg!r} is not supported.", f"Use one of {', '.join(ALGORITHMS)}.")
    kid = f"{alg.lower()}-{utcnow():%Y%m%d}-{uuid.uuid4().hex[:8]}"
    params: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
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


class SmartPrivateKeyJWT(PrivateKeyJWT):
    """authlib's private_key_jwt client authentication, signed as SMART asks.

    authlib's own signing gives the assertion an hour to live and no `kid`; SMART wants `exp` at most five
    minutes ahead and the `kid` of the key in the app's JWKS. Each assertion gets a fresh `jti` from authlib.
    """

    def __init__(self, token_endpoint: str, kid: str, alg: str) -> None:
        super().__init__(token_endpoint, headers={"kid": kid, "typ": "JWT"}, alg=alg)

    def sign(self, auth: ClientAuth, token_endpoint: str) -> str:
        """The signed assertion for `auth.client_id`, with `auth.client_secret` as the private key."""
        now = int(utcnow().timestamp())
        # authlib adds `alg` to the header it is given, so it gets a copy.
        return private_key_jwt_sign(auth.client_secret, auth.client_id, token_endpoint, alg=self.alg,
                                    header=dict(self.headers), issued_at=now,
                                    expires_at=now + int(ASSERTION_LIFETIME.total_seconds()))


@lru_cache(maxsize=16)
def _imported_key(alg: str, private_json: str) -> RSAKey | ECKey:
    # Importing an RSA key costs tens of milliseconds; the key text is immutable, so the parsed
    # form is kept (a cache of derived data, not state: every worker derives the same).
    private = json.loads(private_json)
    return RSAKey.import_key(private) if alg == "RS384" else ECKey.import_key(private)


def private_key(row: SigningKey, box: TokenBox) -> RSAKey | ECKey:
    """The private half of a stored signing key."""
    return _imported_key(row.alg, box.open(row.private_jwk_enc))


def client_assertion(row: SigningKey, box: TokenBox, client_id: str, token_url: str) -> str:
    """A signed, single-use client assertion for the token endpoint, as the token client sends it."""
    method = SmartPrivateKeyJWT(token_url, row.kid, row.alg)
    return method.sign(ClientAuth(client_id, private_key(row, box), method), token_url)
