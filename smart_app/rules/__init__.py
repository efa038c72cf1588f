"""Billing rules: load a payer-year rule set and decide a patient-month's billable codes."""

from smart_app.rules.decision import BilledCode, Decision, ProgramDecision, Reason
from smart_app.rules.errors import FactsError, RuleFileError
from smart_app.rules.evaluate import DEFAULT_POLICY, Policy, evaluate
from smart_app.rules.facts import (
    Attestation,
    CarePlan,
    Condition,
    Consent,
    Discharge,
    Episode,
    PatientFacts,
    RatingScale,
    TimeEntry,
)
from smart_app.rules.loader import default_rule_set, load_rule_set
from smart_app.rules.schema import RuleSet

__all__ = [
    "DEFAULT_POLICY", "Attestation", "BilledCode", "CarePlan", "Condition", "Consent", "Decision",
    "Discharge", "Episode", "FactsError", "PatientFacts", "Policy", "ProgramDecision",
    "RatingScale", "Reason", "RuleFileError", "RuleSet", "TimeEntry", "default_rule_set",
    "evaluate", "load_rule_set",
]
