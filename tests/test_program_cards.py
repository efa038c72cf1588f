"""The patient page's cards: each keeps its place as minutes grow, and a code that missing evidence keeps out of
reach says what is missing instead of showing a progress bar."""

from __future__ import annotations

from smart_app.rules import evaluate
from smart_app.rules.loader import default_rule_set
from smart_app.web.program_cards import program_cards
from tests.rules.conftest import patient, t

RULES = default_rule_set("medicare", 2026)


def cards_after(minutes: int, **facts: object) -> list:
    return program_cards(evaluate(patient(**facts), [t("ccm", minutes)] if minutes else [], RULES, month="2026-03"))


def test_cards_keep_their_place_as_minutes_grow_and_statuses_change() -> None:
    orders = [[c.key for c in cards_after(m)] for m in (0, 10, 19, 20, 45, 90)]
    assert all(order == orders[0] for order in orders)
    # The CCM card went from "on track" to billable on the way without moving.
    statuses = {m: next(c.status for c in cards_after(m) if c.key == "ccm") for m in (10, 20)}
    assert statuses == {10: "in-progress", 20: "billable"}


def test_a_code_missing_evidence_says_what_is_missing_and_shows_no_bar() -> None:
    complex_ccm = next(c for c in cards_after(25, complexity=None) if c.key == "complex_ccm")
    assert [b.code for b in complex_ccm.bars] == []
    assert [code for code, _ in complex_ccm.missing] == ["99487"]
    assert "medical decision making" in dict(complex_ccm.missing)["99487"]
    assert complex_ccm.status_text == "Not billable as documented: evidence is missing"
    # Documented, the same code is reachable again: a bar and nothing missing.
    reachable = next(c for c in cards_after(25) if c.key == "complex_ccm")
    assert [b.code for b in reachable.bars] == ["99487"] and reachable.missing == ()


def test_a_reason_shared_by_several_codes_is_said_once() -> None:
    cards = cards_after(0, qmb=None)
    apcm = next(c for c in cards if c.key == "apcm")
    assert any("QMB" in r.reason or "Qualified Medicare Beneficiary" in r.reason for r in apcm.reasons), apcm.reasons
    for card in cards:
        said = [(r.reason, r.lift) for r in card.reasons]
        assert len(said) == len(set(said)), (card.key, said)


def test_a_blocked_codes_bar_stays_full_once_its_minutes_are_met() -> None:
    def ccm(minutes: int):
        decision = evaluate(patient(consents=()), [t("ccm", minutes)], RULES, month="2026-03")
        return next(c for c in program_cards(decision, RULES) if c.key == "ccm")

    assert [(b.code, b.minutes, b.target) for b in ccm(10).bars][:1] == [("99490", 10, 20)]
    # Past 20 minutes, without consent: the 99490 bar stays, full, beside the reason that blocks it.
    card = ccm(25)
    assert ("99490", 25, 20) in [(b.code, b.minutes, b.target) for b in card.bars]
    assert card.reasons[0].kind == "consent" and card.status == "needs-action"


def test_the_timer_banner_names_a_patient_from_the_directory(sessions) -> None:
    # On SQLite and PostgreSQL: the banner's name for another patient's timer comes from the directory.
    from smart_app.db import transaction
    from smart_app.launch.organizations import Organization, save_organizations
    from smart_app.ledger.directory import patient_name, remember_patient

    org = Organization(id="org-banner", name="Banner Clinic", issuer="https://banner.example.org/fhir", client_id="app")
    with transaction(sessions) as db:
        save_organizations(db, [org])
        remember_patient(db, org.id, "p-1", name="Harold Whitaker", birth_date=None, mrn=None, care_manager=None,
                         care_manager_name=None)
    with transaction(sessions) as db:
        assert patient_name(db, org.id, "p-1") == "Harold Whitaker"
        assert patient_name(db, org.id, "p-never-opened") is None
