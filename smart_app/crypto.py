"""Encryption at rest for OAuth tokens, and hashing of opaque handles."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from smart_app.errors import SessionExpired


class TokenBox:
    """Encrypts and decrypts secrets with a key derived from the app's secret key."""

    def __init__(self, secret_key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"smart-app token encryption v1").derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plaintext: str) -> str:
        """Encrypt a token for storage."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def seal_json(self, value: dict) -> str:
        """Encrypt a JSON object (a private key) for storage."""
        return self.seal(json.dumps(value, sort_keys=True))

    def open_json(self, ciphertext: str) -> dict:
        """Decrypt a JSON object sealed with `seal_json`."""
        value: dict = json.loads(self.open(ciphertext))  # only seal_json's objects are sealed this way
        return value

    def open(self, ciphertext: str) -> str:
        """Decrypt a stored token; a key change makes old sessions unusable, not a crash."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SessionExpired("The stored EHR authorization can no longer be read.",
                                 "Relaunch the app from the patient's chart.") from exc


def hash_handle(handle: str) -> str:
    """The database key of an opaque handle (session id), so a database leak exposes no handle."""
    return hashlib.sha256(handle.encode()).hexdigest()

