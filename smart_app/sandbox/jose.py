"""Just enough JOSE for the sandbox: verify RS384/ES384 client assertions, sign RS256 id_tokens.

Written on `cryptography` directly because authlib.jose is deprecated (it warns on import).
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from smart_app.sandbox.db import Database

_HASHES = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "ES384": hashes.SHA384}


class JoseError(ValueError):
    """A token that is malformed or whose signature does not verify."""


def b64url_encode(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Base64url with or without padding."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise JoseError("bad base64url") from exc


def _uint(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def split_token(token: str) -> tuple[dict, dict, bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS; nothing verified yet."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseError("not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise JoseError("header or claims are not JSON") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JoseError("header and claims must be JSON objects")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), b64url_decode(parts[2])


def public_key_from_jwk(jwk: dict) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """A cryptography public key from an RSA or P-384 EC JWK."""
    if jwk.get("kty") == "RSA":
        return rsa.RSAPublicNumbers(_uint(jwk["e"]), _uint(jwk["n"])).public_key()
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-384":
        return ec.EllipticCurvePublicNumbers(
            _uint(jwk["x"]), _uint(jwk["y"]), ec.SECP384R1()
        ).public_key()
    raise JoseError(f"unsupported key type {jwk.get('kty')}/{jwk.get('crv')}")


def _verify(key: object, alg: str, data: bytes, signature: bytes) -> bool:
    try:
        if alg.startswith("RS") and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), _HASHES[alg]())
            return True
        if alg == "ES384" and isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 96:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:48], "big"),
                                       int.from_bytes(signature[48:], "big"))
            key.verify(der, data, ec.ECDSA(hashes.SHA384()))
            return True
    except InvalidSignature:
        return False
    return False


def verify_jws(token: str, jwks: dict, algorithms: tuple[str, ...]) -> tuple[dict, dict]:
    """(header, claims) once the signature verifies with a key of `jwks`; JoseError otherwise."""
    header, claims, data, signature = split_token(token)
    alg = header.get("alg")
    if alg not in algorithms:
        raise JoseError(f"alg {alg!r} is not one of {', '.join(algorithms)}")
    wanted_kty = "RSA" if alg.startswith("RS") else "EC"
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kty") == wanted_kty]
    if header.get("kid") is not None:
        keys = [k for k in keys if k.get("kid") == header["kid"]]
    if not keys:
        raise JoseError(f"no registered {wanted_kty} key matches kid {header.get('kid')!r}")
    for jwk in keys:
        try:
            public = public_key_from_jwk(jwk)
        except (JoseError, KeyError, ValueError):
            continue
        if _verify(public, alg, data, signature):
            return header, claims
    raise JoseError("signature does not verify with the registered keys")


class SigningKey:
    """The sandbox's RSA key: signs id_tokens (RS256) and is published at /auth/jwks."""

    def __init__(self, private: rsa.RSAPrivateKey) -> None:
        self.private = private
        numbers = private.public_key().public_numbers()
        self._n = b64url_encode(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))
        self._e = b64url_encode(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))
        thumb = json.dumps({"e": self._e, "kty": "RSA", "n": self._n}, separators=(",", ":"))
        self.kid = b64url_encode(hashlib.sha256(thumb.encode()).digest())  # RFC 7638

    @classmethod
    def load_or_create(cls, db: Database) -> SigningKey:
        """The key stored in the database, created on first use so restarts keep it."""
        with db.transaction():
            pem = db.scalar("SELECT pem FROM signing_keys LIMIT 1")
            if pem:
                key = serialization.load_pem_private_key(pem.encode(), password=None)
                assert isinstance(key, rsa.RSAPrivateKey)
                return cls(key)
            created = cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))
            pem = created.private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
            db.execute("INSERT INTO signing_keys (kid, pem) VALUES (?, ?)", (created.kid, pem))
            return created

    def public_jwks(self) -> dict:
        """The JWKS with this key's public half."""
        return {"keys": [{"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                          "n": self._n, "e": self._e}]}

    def sign(self, claims: dict) -> str:
        """A compact RS256 JWS over `claims`."""
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        data = ".".join(
            b64url_encode(json.dumps(part, separators=(",", ":")).encode())
            for part in (header, claims)
        )
        signature = self.private.sign(data.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{data}.{b64url_encode(signature)}"
