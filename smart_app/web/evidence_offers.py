"""Where a reason says what would lift it, the place to record it: pure, from the facts, the rule set and the cards.

Each offer says what is missing, where in the EHR it would go (the app reads it from there), and carries the form to
record it in the app instead (attributed and audited: `ledger.evidence`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from smart_app.ledger.evidence import EvidenceRecord
from smart_app.rules.facts import Discharge, PatientFacts
from smart_app.rules.schema import RuleSet
from smart_app.statuses import EvidenceKind
from smart_app.web.program_cards import ProgramCard

# A discharge stays on the page through TCM's 30-day service period and a little after, for late documentation.
_DISCHARGE_DAYS = 45
_ACTIVE = ("active", "recurrence", "relapse")


@dataclass(frozen=True)
class Offer:
    """One thing the rules need, what is on file for it, where the EHR keeps it, and the form to record it."""

    kind: EvidenceKind
    title: str
    on_file: str
    where_in_ehr: str
    subject: str = ""
    # (subject, label) choices when the form must say what it is about (a condition).
    choices: tuple[tuple[str, str], ...] = ()
    dated: bool = True
    yes_no: bool = False
    button: str = "Record"
    # The programs (rule-set family keys) it concerns, and the open card that shows it ("": none does).
    programs: tuple[str, ...] = ()
    card: str = ""
    # A page of the app where the thing itself is made (the care-plan editor), offered before the form, which then
    # records only what is kept elsewhere.
    link: str = ""
    link_text: str = ""
    form_intro: str = ""


def _needing(rule_set: RuleSet, evidence: str) -> tuple[str, ...]:
    """The families (programs) whose codes need this evidence, or that warn when it is missing."""
    return tuple(key for key, fam in rule_set.families.items()
                 if any(evidence in code.evidence for code in fam.codes.values()) or evidence in fam.warn_if_missing)


def _in_play(rule_set: RuleSet, facts: PatientFacts, evidence: str) -> bool:
    """Whether the patient consented to a program whose codes need this evidence (without consent, consent is what
    the page asks for first)."""
    consented = {c.program for c in facts.consents if c.status == "active"}
    for fam in rule_set.families.values():
        for code in fam.codes.values():
            needs = evidence in code.evidence or evidence in fam.warn_if_missing
            if needs and (set(code.consent_programs or fam.consent_programs) & consented):
                return True
    return False


def _placed(offer: Offer, cards: Iterable[ProgramCard]) -> Offer:
    """The offer shown in the first open card of a program it concerns (else in the page's evidence section)."""
    home = next((c.key for c in cards if c.relevant and c.key in offer.programs), "")
    return dataclasses.replace(offer, card=home)


def _who(records: Iterable[EvidenceRecord], kind: EvidenceKind, subject: str) -> str:
    found = [r for r in records if r.kind is kind and r.subject == subject]
    if not found:
        return ""
    last = found[-1]
    return f" (recorded in the app by {last.recorded_by} on {last.recorded_at.date().isoformat()})"


def _tcm_offers(d: Discharge, records: list[EvidenceRecord], programs: tuple[str, ...]) -> list[Offer]:
    ref = d.id or ""
    label = f"discharge on {d.date.isoformat()}"
    med = d.medication_reconciliation_date
    recorded_med = _who(records, EvidenceKind.TCM_MEDICATION_RECONCILIATION, ref)
    attempts = ", ".join(a.isoformat() for a in d.contact_attempts)
    return [
        Offer(EvidenceKind.TCM_MEDICATION_RECONCILIATION, f"TCM, {label}: medication reconciliation",
              (f"done on {med.isoformat()}{recorded_med or ' (from the EHR)'}" if med else "no date on file"),
              "a completed Procedure coded SNOMED CT 430193006 (medication reconciliation), no later than the "
              "face-to-face visit", subject=ref, button="Record the reconciliation date", programs=programs),
        Offer(EvidenceKind.TCM_CONTACT_ATTEMPT, f"TCM, {label}: attempts to contact the patient",
              (f"contact on {d.contact_date.isoformat()}" if d.contact_date else "no interactive contact on file")
              + (f"; attempts on {attempts}" if attempts else ""),
              "a telephone or virtual Encounter after the discharge (an interactive contact within 2 business "
              "days); two or more documented timely attempts also count", subject=ref,
              button="Record an attempt", programs=programs),
    ]


def evidence_offers(facts: PatientFacts, rule_set: RuleSet, cards: tuple[ProgramCard, ...],
                    records: list[EvidenceRecord], today: dt.date) -> tuple[Offer, ...]:
    """The places to record what the month's reasons ask for, for this patient."""
    offers: list[Offer] = []
    for d in facts.discharges:
        if 0 <= (today - d.date).days <= _DISCHARGE_DAYS:
            offers.extend(_tcm_offers(d, records, _needing(rule_set, "tcm_interactive_contact")))
    if _in_play(rule_set, facts, "cocm_episode") and not any(e.program == "cocm" for e in facts.episodes):
        offers.append(Offer(EvidenceKind.COCM_EPISODE_START, "CoCM: when the episode of care began",
                            "no episode start on file, so the first month cannot be told from later ones",
                            "a CarePlan for the CoCM program (its start is the episode's start)",
                            button="Record the episode start", programs=_needing(rule_set, "cocm_episode")))
    if _in_play(rule_set, facts, "qmb_status") and facts.qmb is None:
        offers.append(Offer(EvidenceKind.QMB_STATUS, "Qualified Medicare Beneficiary (QMB) status",
                            "unknown: the APCM level depends on it",
                            "not held in the EHR's FHIR record: take it from the Medicare eligibility check",
                            dated=False, yes_no=True, button="Record QMB status",
                            programs=_needing(rule_set, "qmb_status")))
    if _in_play(rule_set, facts, "high_risk_condition") \
            and not any(c.high_risk for c in facts.conditions):
        choices = tuple((c.id, f"{c.display} ({c.code})" if c.display else str(c.code)) for c in facts.conditions
                        if c.id and (c.clinical_status or "active") in _ACTIVE)
        if choices:
            offers.append(Offer(EvidenceKind.CONDITION_HIGH_RISK, "PCM: the condition you judge high-risk",
                                "no condition is marked high-risk",
                                "the EHR has no standard element for this clinical judgement; record it here",
                                choices=choices, dated=False, yes_no=True, button="Record the judgement",
                                programs=_needing(rule_set, "high_risk_condition")))
    if _in_play(rule_set, facts, "care_plan") and not any(
            p.status.lower() == "active" and p.date <= today for p in facts.care_plans):
        offers.append(Offer(EvidenceKind.CARE_PLAN, "A comprehensive care plan on file",
                            "no active care plan on file",
                            "an active CarePlan for the patient", button="Record the care plan date",
                            programs=_needing(rule_set, "care_plan"), link="/patient/care-plan",
                            link_text="Write the care plan in the app",
                            form_intro="For a plan kept elsewhere (a paper plan, another system), record its date:"))
    return tuple(_placed(offer, cards) for offer in offers)
