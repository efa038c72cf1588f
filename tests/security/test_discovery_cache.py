"""Threat: anyone can request `/launch`; each one made the app read the EHR's discovery document and
CapabilityStatement (two EHR requests), so a flood of launches became a flood against the EHR. Both are now
kept in the database per issuer for an hour, shared by every worker."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from smart_app.db import utcnow
from smart_app.launch.models import EhrMetadataRow
from tests.security.helpers import database, from_address, launch
from tests.stack import Stack


def metadata_reads(stack: Stack) -> int:
    log = httpx.get(f"{stack.sandbox_url}/_sandbox/requests").json()
    return sum(1 for r in log if "/.well-known/smart-configuration" in r["path"] or r["path"].endswith("/metadata"))


ADDRESS = "127.0.0.32"  # this test's launches count against their own per-address limit


def start_launch(stack: Stack) -> httpx.Response:
    with from_address(ADDRESS) as client:
        return client.get(f"{stack.app_url}/launch", params={"iss": stack.fhir_base, "launch": "anything"})


def test_launches_read_the_ehrs_metadata_once_an_hour(secure_stack: Stack) -> None:
    launch(secure_stack, address=ADDRESS)  # the cache holds this issuer's answers from here on
    httpx.delete(f"{secure_stack.sandbox_url}/_sandbox/requests").raise_for_status()
    assert [start_launch(secure_stack).status_code for _ in range(5)] == [200] * 5  # the launch page
    launch(secure_stack, address=ADDRESS)
    assert metadata_reads(secure_stack) == 0
    with database(secure_stack) as db:
        kinds = set(db.scalars(select(EhrMetadataRow.kind).where(EhrMetadataRow.issuer == secure_stack.fhir_base)))
        assert kinds == {"smart-configuration", "capabilities"}
        # An hour later the entries have expired: the next launch reads the EHR again, once for both.
        db.execute(update(EhrMetadataRow).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert start_launch(secure_stack).status_code == 200
    assert start_launch(secure_stack).status_code == 200
    assert metadata_reads(secure_stack) == 2
