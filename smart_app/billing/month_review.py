"""The biller's month at a glance: where each claim stands (ready, held, needs action, waiting, sent, failed ...),
the month's counts, and the filters by status, program and problem. Pure: claims and their deliveries in, views out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from smart_app.billing.claims import StoredClaim
from smart_app.billing.outbox import OutboxView
from smart_app.billing.proposal import approval_blockers
from smart_app.statuses import ClaimStatus, OutboxStatus


class ClaimStanding(StrEnum):
    """Where a claim stands for the biller this month."""

    READY = "ready"              # proposed, billable, its evidence holds: can be approved
    NEEDS_ACTION = "needs action"  # its evidence fails, a delivery failed, or a retired record needs a hand
    HELD = "held"
    WAITING = "waiting to send"  # approved, some resources still queued
    SENT = "sent"                # approved, everything delivered (or not accepted by this EHR)
    FAILED = "failed"            # approved, a delivery failed
    NOTHING = "nothing billable"


class Problem(StrEnum):
    """What the problem filter offers."""

    BLOCKED = "blocked"          # cannot be approved: its own evidence fails
    WARNINGS = "warnings"
    LATE = "late"                # carries time recorded after an earlier version was approved
    DELIVERY = "delivery"        # a delivery failed, or a retired record needs a hand


_DONE = {OutboxStatus.DONE, OutboxStatus.NOT_ACCEPTED, OutboxStatus.WITHDRAWN}


def _delivery_trouble(rows: Sequence[OutboxView]) -> bool:
    return any(r.status == OutboxStatus.FAILED or (r.purpose == "retire" and r.status == OutboxStatus.NOT_ACCEPTED)
               for r in rows)


def standing(claim: StoredClaim, rows: Sequence[OutboxView]) -> ClaimStanding:
    """One claim's standing, from its status, its own evidence and its deliveries."""
    if claim.status == ClaimStatus.NOTHING_BILLABLE or not claim.claim.billable:
        return ClaimStanding.NOTHING
    if claim.status == ClaimStatus.HELD:
        return ClaimStanding.HELD
    if claim.status == ClaimStatus.PROPOSED:
        return ClaimStanding.NEEDS_ACTION if approval_blockers(claim.claim) else ClaimStanding.READY
    if any(r.status == OutboxStatus.FAILED for r in rows):
        return ClaimStanding.FAILED
    if _delivery_trouble(rows):
        return ClaimStanding.NEEDS_ACTION
    if all(r.status in _DONE for r in rows):
        return ClaimStanding.SENT
    return ClaimStanding.WAITING


def problems(claim: StoredClaim, rows: Sequence[OutboxView]) -> frozenset[Problem]:
    """The problems a claim has, for the problem filter."""
    found: set[Problem] = set()
    if claim.status in (ClaimStatus.PROPOSED, ClaimStatus.HELD) and approval_blockers(claim.claim):
        found.add(Problem.BLOCKED)
    if claim.claim.warnings:
        found.add(Problem.WARNINGS)
    if claim.claim.late_entries:
        found.add(Problem.LATE)
    if _delivery_trouble(rows):
        found.add(Problem.DELIVERY)
    return frozenset(found)


@dataclass(frozen=True)
class MonthView:
    """The month's claims after the filters, and the counts of every standing before them."""

    claims: tuple[StoredClaim, ...]
    counts: tuple[tuple[ClaimStanding, int], ...]
    standings: Mapping[str, ClaimStanding]
    total: int

    def count(self, which: ClaimStanding) -> int:
        """Claims with that standing (unfiltered)."""
        return dict(self.counts).get(which, 0)


def month_view(claims: Sequence[StoredClaim], deliveries: Mapping[str, Sequence[OutboxView]], *,
               status: str | None = None, program: str | None = None, problem: str | None = None) -> MonthView:
    """Filter the month's claims: `status` a ClaimStanding or a claim status, `program` a billed program (family or its
    codes' program), `problem` a Problem. Counts are of the whole month."""
    standings = {c.id: standing(c, deliveries.get(c.id, ())) for c in claims}
    counts = {s: 0 for s in ClaimStanding}
    for s in standings.values():
        counts[s] += 1
    shown = []
    for c in claims:
        rows = deliveries.get(c.id, ())
        if status and status not in (standings[c.id].value, c.status.value):
            continue
        if program and not any(line.program == program or line.program.endswith(f"_{program}")
                               for line in c.claim.lines):
            continue
        if problem and problem not in {p.value for p in problems(c, rows)}:
            continue
        shown.append(c)
    return MonthView(tuple(shown), tuple(counts.items()), standings, len(claims))
