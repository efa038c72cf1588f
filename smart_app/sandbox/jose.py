"""The sandbox's JOSE, on joserfc: verify RS384/ES384 client assertions, sign RS256 id_tokens."""

from __future__ import annotations

import json

from joserfc import errors, jws, jwt
from joserfc.jwk import RSAKey, import_key

from smart_app.sandbox.db import Database


class JoseError(ValueError):
    """A token that is malformed or whose signature does not verify."""


def unverified_token(token: str) -> tuple[dict, dict]:
    """(header, claims) of a compact JWT, nothing verified yet: to find the client whose keys verify it."""
    try:
        signature = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(signature.payload)
    except (errors.JoseError, UnicodeError, ValueError) as exc:
        raise JoseError(f"not a compact JWS ({exc})") from exc
    if not isinstance(claims, dict):
        raise JoseError("the claims must be a JSON object")
    return dict(signature.headers()), claims


def verify_jws(token: str, jwks: dict, algorithms: tuple[str, ...]) -> tuple[dict, dict]:
    """(header, claims) once the signature verifies with a key of `jwks`; JoseError otherwise."""
    header, _ = unverified_token(token)
    alg = header.get("alg")
    if alg not in algorithms:
        raise JoseError(f"alg {alg!r} is not one of {', '.join(algorithms)}")
    wanted_kty = "RSA" if str(alg).startswith("RS") else "EC"
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kty") == wanted_kty]
    if header.get("kid") is not None:
        keys = [k for k in keys if k.get("kid") == header["kid"]]
    if not keys:
        raise JoseError(f"no registered {wanted_kty} key matches kid {header.get('kid')!r}")
    for jwk in keys:
        try:
            verified = jwt.decode(token, import_key(jwk), algorithms=[str(alg)])
        except (errors.JoseError, ValueError):
            # A key of another curve or size, or not the one that signed: try the next registered key.
            continue
        return dict(verified.header), dict(verified.claims)
    raise JoseError("signature does not verify with the registered keys")


class SigningKey:
    """The sandbox's RSA key: signs id_tokens (RS256) and is published at /auth/jwks."""

    def __init__(self, private: RSAKey) -> None:
        self.private = private
        self.kid = private.thumbprint()  # RFC 7638

    @classmethod
    def load_or_create(cls, db: Database) -> SigningKey:
        """The key stored in the database, created on first use so restarts keep it."""
        with db.transaction():
            pem = db.scalar("SELECT pem FROM signing_keys LIMIT 1")
            if pem:
                return cls(RSAKey.import_key(pem))
            created = cls(RSAKey.generate_key(2048))
            db.execute("INSERT INTO signing_keys (kid, pem) VALUES (?, ?)",
                       (created.kid, created.private.as_pem(private=True).decode("ascii")))
            return created

    def public_jwks(self) -> dict:
        """The JWKS with this key's public half."""
        return {"keys": [{**self.private.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def sign(self, claims: dict) -> str:
        """A compact RS256 JWS over `claims`."""
        return jwt.encode({"alg": "RS256", "typ": "JWT", "kid": self.kid}, claims, self.private)
