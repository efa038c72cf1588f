"""One process fetching the organization's backend token at a given instant (two run at once in a test)."""

from __future__ import annotations

import asyncio
import sys
import time

from smart_app.db import transaction
from smart_app.launch.backend import backend_token
from smart_app.launch.organizations import get_organization
from smart_app.services import build_context
from smart_app.settings import load_settings


async def fetch(org_id: str) -> str:
    app = build_context(load_settings())
    try:
        with transaction(app.sessions) as db:
            org = get_organization(db, org_id)
        assert org is not None
        return await backend_token(app.launch, org)
    finally:
        await app.http.aclose()
        app.engine.dispose()


if __name__ == "__main__":
    org_id, at = sys.argv[1], float(sys.argv[2])
    time.sleep(max(0.0, at - time.time()))  # both processes start their read-then-store at the same instant
    print("token" if asyncio.run(fetch(org_id)) else "none")
