"""The audit chain: events link by hash, any edit, deletion or insertion is reported with its seq, concurrent
writers keep one linear chain, secrets are refused, and `smart-app audit verify` exits 0 or 1."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from smart_app.db import transaction
from smart_app.ledger import audit
from smart_app.ledger.audit import (
    ENTRY_RECORDED,
    GENESIS_HASH,
    LAUNCH,
    AuditError,
    event_hash,
    recent_events,
    record_event,
    verify_chain,
)
from smart_app.ledger.records import AuditEventRow

T0 = datetime(2026, 11, 20, 17, 0, 0, 123456, tzinfo=UTC)
TABLE = AuditEventRow.__table__


def append(sessions: sessionmaker[Session], count: int, org: str | None = "org-ny") -> list[audit.AuditEvent]:
    """`count` events, one a second from T0, in one transaction."""
    with transaction(sessions) as db:
        return [record_event(db, actor=f"Practitioner/nurse-{i}", action=ENTRY_RECORDED, subject=f"TimeEntry/e{i}",
                             detail={"minutes": 20 + i, "patient": "pat-1"}, organization_id=org,
                             now=T0 + timedelta(seconds=i)) for i in range(count)]


def verify(sessions: sessionmaker[Session], **kwargs: object) -> audit.VerifyReport:
    with transaction(sessions) as db:
        return verify_chain(db, **kwargs)  # type: ignore[arg-type]


def tamper(engine: Engine, *statements: object) -> None:
    """Change the table behind the app's back, as someone with database access could."""
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)  # type: ignore[arg-type]


def kinds(report: audit.VerifyReport) -> list[tuple[int | None, str]]:
    return [(p.seq, p.kind) for p in report.problems]


def test_events_form_a_chain_that_verifies(sessions: sessionmaker[Session]) -> None:
    events = append(sessions, 3)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    report = verify(sessions)
    assert report.ok and report.rows_checked == 3 and report.problems == ()
    assert report.last_seq == 3 and report.last_hash == events[-1].hash
    assert report.first_bad_seq is None


def test_empty_chain_verifies(sessions: sessionmaker[Session]) -> None:
    report = verify(sessions)
    assert report.ok and report.rows_checked == 0 and report.last_hash == GENESIS_HASH


def test_hash_is_the_documented_serialization(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as db:
        event = record_event(db, actor="Practitioner/é", action=LAUNCH, subject="Patient/p1",
                             detail={"b": [1, 2.5, None], "a": "café"}, now=T0)
        stored = db.scalar(select(AuditEventRow.detail))
    assert stored == '{"a":"café","b":[1,2.5,null]}'
    payload = ["smart-app-audit/1", 1, GENESIS_HASH, "2026-11-20T17:00:00.123456Z", None, "Practitioner/é",
               "launch", "Patient/p1", stored]
    expected = hashlib.sha256(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    assert event.hash == expected
    assert event.at == T0 and event.detail == {"a": "café", "b": [1, 2.5, None]}


def test_event_rolls_back_with_the_callers_work_and_leaves_no_gap(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), transaction(sessions) as db:
        record_event(db, actor="a", action=LAUNCH, subject="s", detail={}, now=T0)
        raise RuntimeError("the caller's work failed")
    assert append(sessions, 1)[0].seq == 1
    assert verify(sessions).ok


@pytest.mark.parametrize("column, value", [
    ("detail", '{"minutes":200,"patient":"pat-1"}'),
    ("actor", "Practitioner/someone-else"),
    ("at", T0 - timedelta(days=3)),
    ("subject", "TimeEntry/other"),
    ("organization_id", "org-other"),
    ("action", "claim.approved"),
])
def test_an_edited_column_is_reported_with_its_seq(engine: Engine, sessions: sessionmaker[Session], column: str,
                                                   value: object) -> None:
    append(sessions, 4)
    tamper(engine, update(TABLE).where(TABLE.c.seq == 2).values({column: value}))
    report = verify(sessions)
    assert not report.ok
    assert kinds(report) == [(2, "edited")]
    assert report.first_bad_seq == 2 and report.rows_checked == 4
    assert "event 2: was changed after it was written" in str(report.problems[0])


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(engine: Engine, sessions: sessionmaker[Session]) -> None:
    events = append(sessions, 3)
    forged = event_hash(seq=2, prev_hash=events[0].hash, at=events[1].at, organization_id="org-ny",
                        actor="Practitioner/nurse-1", action=ENTRY_RECORDED, subject="TimeEntry/e1",
                        detail_json='{"minutes":90,"patient":"pat-1"}')
    tamper(engine, update(TABLE).where(TABLE.c.seq == 2).values(detail='{"minutes":90,"patient":"pat-1"}',
                                                                 hash=forged))
    report = verify(sessions)
    assert kinds(report) == [(3, "broken-link")]
    assert "does not link to event 2" in report.problems[0].message


def test_a_deleted_middle_event_is_reported(engine: Engine, sessions: sessionmaker[Session]) -> None:
    append(sessions, 4)
    tamper(engine, delete(TABLE).where(TABLE.c.seq == 2))
    report = verify(sessions)
    assert kinds(report) == [(2, "missing")]
    assert report.first_bad_seq == 2 and report.rows_checked == 3
    assert "event 2 is missing" in report.problems[0].message


def test_deleted_events_renumbered_to_close_the_gap_are_reported(engine: Engine,
                                                                sessions: sessionmaker[Session]) -> None:
    append(sessions, 4)
    tamper(engine, delete(TABLE).where(TABLE.c.seq == 2), update(TABLE).where(TABLE.c.seq == 3).values(seq=2),
           update(TABLE).where(TABLE.c.seq == 4).values(seq=3))
    report = verify(sessions)
    assert kinds(report) == [(2, "broken-link"), (2, "edited"), (3, "edited")]
    assert report.first_bad_seq == 2


def test_a_deleted_first_event_is_reported(engine: Engine, sessions: sessionmaker[Session]) -> None:
    append(sessions, 3)
    tamper(engine, delete(TABLE).where(TABLE.c.seq == 1))
    assert kinds(verify(sessions)) == [(1, "missing")]


def test_a_renumbered_first_event_is_a_bad_start(engine: Engine, sessions: sessionmaker[Session]) -> None:
    append(sessions, 3)
    tamper(engine, delete(TABLE).where(TABLE.c.seq == 1), update(TABLE).where(TABLE.c.seq == 2).values(seq=1))
    report = verify(sessions)
    assert (1, "bad-start") in kinds(report) and report.first_bad_seq == 1


def test_a_truncated_tail_needs_the_kept_anchor(engine: Engine, sessions: sessionmaker[Session]) -> None:
    """The chain alone cannot see events removed from its end; a last hash kept elsewhere can."""
    events = append(sessions, 3)
    kept = verify(sessions).last_hash
    assert verify(sessions, anchor=kept).anchor_seq == 3
    tamper(engine, delete(TABLE).where(TABLE.c.seq == 3))
    assert verify(sessions).ok  # the documented limit: a shorter chain is still a valid chain
    report = verify(sessions, anchor=kept)
    assert not report.ok and kinds(report) == [(None, "anchor-missing")]
    assert verify(sessions, anchor=events[1].hash).ok


def test_a_forged_event_with_a_made_up_hash_is_reported(engine: Engine, sessions: sessionmaker[Session]) -> None:
    events = append(sessions, 2)
    tamper(engine, insert(TABLE).values(seq=3, at=T0, organization_id="org-ny", actor="Practitioner/x",
                                        action=ENTRY_RECORDED, subject="TimeEntry/forged", detail="{}",
                                        prev_hash=events[-1].hash, hash="f" * 64))
    assert kinds(verify(sessions)) == [(3, "edited")]


def test_a_well_hashed_event_inserted_mid_chain_is_reported(engine: Engine, sessions: sessionmaker[Session]) -> None:
    events = append(sessions, 4)
    forged = dict(seq=3, at=T0, organization_id="org-ny", actor="Practitioner/x", action=ENTRY_RECORDED,
                  subject="TimeEntry/forged", detail="{}", prev_hash=events[1].hash)
    forged_hash = event_hash(seq=3, prev_hash=events[1].hash, at=T0, organization_id="org-ny",
                             actor="Practitioner/x", action=ENTRY_RECORDED, subject="TimeEntry/forged",
                             detail_json="{}")
    # Make room at seq 3 (highest first, so the primary key never collides), then slip the forged event in.
    tamper(engine, update(TABLE).where(TABLE.c.seq == 4).values(seq=5),
           update(TABLE).where(TABLE.c.seq == 3).values(seq=4), insert(TABLE).values(**forged, hash=forged_hash))
    report = verify(sessions)
    assert kinds(report) == [(4, "broken-link"), (4, "edited"), (5, "edited")]
    assert report.first_bad_seq == 4 and report.rows_checked == 5


def test_swapped_events_are_reported(engine: Engine, sessions: sessionmaker[Session]) -> None:
    append(sessions, 4)
    tamper(engine, update(TABLE).where(TABLE.c.seq == 2).values(seq=-2),
           update(TABLE).where(TABLE.c.seq == 3).values(seq=2), update(TABLE).where(TABLE.c.seq == -2).values(seq=3))
    report = verify(sessions)
    assert not report.ok and report.first_bad_seq == 2
    assert {(2, "edited"), (3, "edited")} <= set(kinds(report))


def test_verification_streams_in_batches_and_caps_the_list(engine: Engine, sessions: sessionmaker[Session],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    append(sessions, 7)
    monkeypatch.setattr(audit, "_BATCH", 2)
    assert verify(sessions).rows_checked == 7
    monkeypatch.setattr(audit, "MAX_PROBLEMS", 2)
    tamper(engine, update(TABLE).where(TABLE.c.seq > 1).values(actor="nobody"))
    report = verify(sessions)
    assert len(report.problems) == 2 and report.problem_count == 6 and report.first_bad_seq == 2


def test_concurrent_writers_keep_one_linear_chain(engine: Engine, sessions: sessionmaker[Session]) -> None:
    threads, per_thread = 6, 8
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with transaction(sessions) as db:
                    record_event(db, actor=f"Practitioner/w{number}", action=ENTRY_RECORDED,
                                 subject=f"TimeEntry/{number}-{i}", detail={"i": i}, organization_id="org-ny")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert failures == []
    report = verify(sessions)
    assert report.ok and report.rows_checked == threads * per_thread
    with engine.connect() as connection:
        seqs = connection.scalars(select(TABLE.c.seq).order_by(TABLE.c.seq)).all()
    assert seqs == list(range(1, threads * per_thread + 1))


def test_secrets_and_bad_events_are_refused(sessions: sessionmaker[Session]) -> None:
    refused: list[dict[str, object]] = [
        {"detail": {"access_token": "x"}},
        {"detail": {"nested": {"client_secret": 1}}},
        {"detail": {"items": [{"Password": "p"}]}},
        {"detail": {"client-assertion": "x"}},
        {"detail": {"refresh-Token": "x"}},
        {"detail": {"note": "eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJ4In0.c2ln"}},
        {"detail": {"when": datetime(2026, 1, 1, tzinfo=UTC)}},
        {"detail": {"ratio": float("nan")}},
        {"action": "entry.deleted"},
        {"actor": "x" * 501},
        {"actor": "  "},
        {"now": datetime(2026, 11, 20, 12, 0)},
    ]
    for changes in refused:
        fields: dict[str, object] = {"actor": "Practitioner/a", "action": LAUNCH, "subject": "Patient/p",
                                     "detail": {}, "now": T0, **changes}
        with pytest.raises(AuditError), transaction(sessions) as db:
            record_event(db, **fields)  # type: ignore[arg-type]
    with transaction(sessions) as db:
        assert db.scalar(select(AuditEventRow.seq)) is None


def test_recent_events_and_organization_count(sessions: sessionmaker[Session]) -> None:
    append(sessions, 3, org="org-ny")
    append(sessions, 2, org="org-tx")
    with transaction(sessions) as db:
        assert [e.seq for e in recent_events(db, 2)] == [4, 5]
        assert [e.subject for e in recent_events(db, 10, "org-ny")] == ["TimeEntry/e0", "TimeEntry/e1",
                                                                       "TimeEntry/e2"]
    assert verify(sessions, organization_id="org-tx").organization_events == 2


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smart_app.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60, cwd=Path(__file__).resolve().parents[2])


def test_cli_verify_exit_codes_and_tail(database_url: str, engine: Engine, sessions: sessionmaker[Session],
                                        tmp_path: Path) -> None:
    env = {"SMART_APP_DATA_DIR": str(tmp_path / "data"), "SMART_APP_DATABASE_URL": database_url,
           "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    events = append(sessions, 3)
    intact = run_cli("audit", "verify", env=env)
    assert intact.returncode == 0, intact.stderr
    assert f"Audit chain intact: 3 events, last hash {events[-1].hash}" in intact.stdout
    tail = run_cli("audit", "tail", "-n", "2", env=env)
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 2 and "Practitioner/nurse-2  entry.recorded  TimeEntry/e2" in lines[1]
    tamper(engine, update(TABLE).where(TABLE.c.seq == 2).values(actor="Practitioner/mallory"))
    broken = run_cli("audit", "verify", env=env)
    assert broken.returncode == 1
    assert "event 2: was changed after it was written" in broken.stdout
    assert "Audit chain BROKEN: 1 problem in 3 events; first bad event 2." in broken.stdout
