"""An organization's pricing: its rule set with the rate settings of its file's [medicare_rates] table."""

from __future__ import annotations

from smart_app.launch.organizations import Organization
from smart_app.rules.loader import rule_set_named
from smart_app.rules.rates import SETTINGS_TABLE, Pricing, rate_settings


def organization_pricing(org: Organization) -> Pricing:
    """How the organization's pages price codes: national, or its locality's GPCIs and chosen conversion factor."""
    rule_set = rule_set_named(org.rule_set)
    return Pricing(rule_set, rate_settings(org.extra.get(SETTINGS_TABLE), f"organization {org.id!r}", rule_set))
