"""Client assertions (private_key_jwt) as SMART 2.x requires, and key rotation with an overlap."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session, sessionmaker

from smart_app.crypto import TokenBox
from smart_app.db import transaction
from smart_app.errors import ConfigError
from smart_app.launch.keys import client_assertion, generate_key, public_jwks, rotate_keys, signing_key

BOX = TokenBox("k" * 40)


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_assertion_has_the_smart_header_and_claims(sessions: sessionmaker[Session], alg: str) -> None:
    with transaction(sessions) as db:
        row = generate_key(db, BOX, alg)
        jwks = public_jwks(db)
    token_url = "https://ehr.example/token"
    first = client_assertion(row, BOX, "my-app", token_url)
    second = client_assertion(row, BOX, "my-app", token_url)
    decoded = jwt.decode(first, KeySet.import_key_set(jwks), algorithms=[alg])
    assert decoded.header == {"alg": alg, "kid": row.kid, "typ": "JWT"}
    claims = decoded.claims
    assert claims["iss"] == claims["sub"] == "my-app"
    assert claims["aud"] == token_url
    assert 0 < claims["exp"] - time.time() <= 300
    assert claims["jti"] != jwt.decode(second, KeySet.import_key_set(jwks), algorithms=[alg]).claims["jti"]
    assert all("d" not in key for key in jwks["keys"]), "only public halves are published"


def test_rotation_keeps_the_old_key_verifiable_for_the_overlap(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as db:
        old = generate_key(db, BOX)
        new = rotate_keys(db, BOX, overlap=timedelta(days=3))
        assert signing_key(db).kid == new.kid
        assert {k["kid"] for k in public_jwks(db)["keys"]} == {old.kid, new.kid}
        old_row = db.get(type(old), old.kid)
        old_row.expires_at = old_row.retired_at  # the overlap has run out
        db.flush()
        assert {k["kid"] for k in public_jwks(db)["keys"]} == {new.kid}
        with pytest.raises(ConfigError, match="does not exist or expired"):
            signing_key(db, old.kid)


def test_no_key_says_how_to_make_one(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as db, pytest.raises(ConfigError, match="smart-app keys generate"):
        signing_key(db)
