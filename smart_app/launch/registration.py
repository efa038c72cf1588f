"""What an EHR must be told about this app: its client, redirect URI and public keys."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from smart_app.crypto import TokenBox
from smart_app.launch.keys import generate_key, public_jwks, published_keys
from smart_app.launch.organizations import Organization


@dataclass(frozen=True)
class ClientRegistration:
    """The registration an EHR administrator enters for one organization."""

    client_id: str
    auth_method: str
    redirect_uri: str
    launch_url: str
    jwks: dict | None


def registration_for(db: Session, box: TokenBox, org: Organization, redirect_uri: str,
                     launch_url: str, create_key: bool = False) -> ClientRegistration:
    """The organization's registration; with `create_key`, a first signing key is made if none exists."""
    jwks = None
    if org.client_auth == "private_key_jwt":
        if create_key and not published_keys(db):
            generate_key(db, box)
        jwks = public_jwks(db)
    return ClientRegistration(client_id=org.client_id, auth_method=org.client_auth,
                              redirect_uri=redirect_uri, launch_url=launch_url, jwks=jwks)
