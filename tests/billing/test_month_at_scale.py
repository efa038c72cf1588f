"""The biller's month at scale, over the stack: what is ready, held, sent, failed and needs action on one page;
filters by status, program and problem; several claims approved in one action, each checked and audited, a refused
one named with why."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from smart_app.db import transaction
from smart_app.ledger.audit import CLAIM_APPROVED
from smart_app.ledger.records import AuditEventRow
from smart_app.services import build_context
from tests.billing.test_rollup import MONTH
from tests.stack import Stack, biller_headers, new_browser
from tests.test_capture_api import api, earlier_today, launch

READY = ("ccm-two-chronic", "complex-ccm-high")


def _page(stack: Stack, headers: dict, **filters: str) -> str:
    with new_browser() as browser:
        answer = browser.get(f"{stack.app_url}/billing", params={"month": MONTH, **filters}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.text


def _claims(page: str) -> dict[str, str]:
    """patient id -> claim id, of the claims the page shows."""
    return {patient: claim for claim, patient in re.findall(
        r'<article class="claim[^"]*" aria-labelledby="claim-([^"]+)" data-patient="([^"]+)">', page)}


def _count(page: str, standing: str) -> int:
    found = re.search(r">(\d+) " + re.escape(standing) + "</a>", page)
    assert found, standing
    return int(found.group(1))


def _approvals(stack: Stack) -> int:
    app = build_context(stack.settings)
    try:
        with transaction(app.sessions) as db:
            return int(db.scalar(select(func.count()).select_from(AuditEventRow).where(
                AuditEventRow.action == CLAIM_APPROVED)) or 0)
    finally:
        app.engine.dispose()


def test_a_month_of_claims_filtered_and_approved_in_one_action(stack: Stack) -> None:
    for i, patient in enumerate(READY):
        headers, _ = launch(stack, patient, user="pr-nurse")
        date, time = earlier_today(900 - 100 * i)
        made = api(stack, "POST", "/entries", headers, json={
            "program": "ccm", "activity": "record-review", "date": date, "time": time, "minutes": 25})
        assert made.status_code == 201, made.text
    launch(stack, "tcm-recent-discharge", user="pr-nurse")
    launch(stack, "acute-only", user="pr-nurse")
    biller = biller_headers(stack)
    run = api(stack, "POST", "/billing/rollup", biller, json={"month": MONTH, "source": "ehr"})
    assert run.status_code == 200 and not run.json()["errors"], run.text

    page = _page(stack, biller)
    every = _claims(page)
    assert set(READY) | {"tcm-recent-discharge"} <= set(every)
    assert _count(page, "ready") == 2 and _count(page, "needs action") >= 1
    assert _count(page, "sent") == 0 and _count(page, "held") == 0 and _count(page, "failed") == 0
    assert set(_claims(_page(stack, biller, status="ready"))) == set(READY)
    assert set(_claims(_page(stack, biller, problem="blocked"))) == {"tcm-recent-discharge"}
    assert set(_claims(_page(stack, biller, program="tcm"))) == {"tcm-recent-discharge"}
    assert "No claim matches these filters." in _page(stack, biller, status="held")
    # Ready claims come selected for the one approval; the others have no box.
    ready_page = _page(stack, biller, status="ready")
    assert ready_page.count('name="claim_ids"') == 2 and 'data-api="/api/v1/claims/approve"' in ready_page

    before = _approvals(stack)
    ids = [every[p] for p in READY] + [every["tcm-recent-discharge"]]
    answer = api(stack, "POST", "/claims/approve", biller, json={"claim_ids": ids, "note": "month end"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert sorted(result["approved"]) == sorted(every[p] for p in READY)
    assert [r["claim_id"] for r in result["refused"]] == [every["tcm-recent-discharge"]]
    refused = result["refused"][0]
    assert refused["patient"] and "cannot be approved" in refused["why"]
    assert "Approved 2 claims" in result["message"] and refused["patient"] in result["message"]
    # Each approval is its own audited event.
    assert _approvals(stack) == before + 2

    after = _page(stack, biller)
    assert _count(after, "ready") == 0
    assert _count(after, "sent") + _count(after, "waiting to send") == 2
    assert set(_claims(_page(stack, biller, status="approved"))) == set(READY)


def test_the_batch_route_needs_the_biller_role_and_a_list(stack: Stack) -> None:
    nurse, _ = launch(stack, "ccm-two-chronic", user="pr-nurse")
    denied = api(stack, "POST", "/claims/approve", nurse, json={"claim_ids": ["x"]})
    assert denied.status_code == 403, denied.text
    biller = biller_headers(stack)
    empty = api(stack, "POST", "/claims/approve", biller, json={"claim_ids": []})
    assert empty.status_code == 422, empty.text
    unknown = api(stack, "POST", "/claims/approve", biller, json={"claim_ids": ["no-such-claim"]})
    assert unknown.status_code == 200
    assert unknown.json()["approved"] == [] and "No such claim" in unknown.json()["refused"][0]["why"]
