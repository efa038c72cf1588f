"""What a code is estimated to pay: national, or for an organization's Medicare payment locality.

Every figure here is an estimate shown to people, never a payment amount. `estimate` is the one
place that turns a code's relative value units into money:

* national: non-facility total RVU x conversion factor (CMS's national amount);
* locality: [(work RVU x work GPCI) + (PE RVU x PE GPCI) + (MP RVU x MP GPCI)] x conversion factor,
  CMS's published PFS formula with the organization's three geographic practice cost indices.

Both use the non-facility RVUs: care management is mostly furnished from the office, and the rule
file keeps the facility figures for the day a page needs them. The conversion factor is the rule
set's standard one, or its qualifying-APM one when the organization chooses it. Amounts are
rounded to the cent, half up, as CMS rounds its published amounts. A code whose rate in the rule
set carries no RVUs (a secondary-source figure) keeps its national figure and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from smart_app.errors import ConfigError
from smart_app.rules.schema import Code, Family, RuleSet, to_cents

# The table of an organization file that holds its rate settings.
SETTINGS_TABLE = "medicare_rates"
STANDARD_CF, QUALIFYING_APM_CF = "standard", "qualifying-apm"
_GPCI_KEYS = {"work_gpci": "work", "pe_gpci": "practice expense", "mp_gpci": "malpractice"}
_SETTINGS_KEYS = {"locality", *_GPCI_KEYS, "conversion_factor"}
# Published GPCIs lie well inside this range; a value outside it is a typo, not a locality.
_GPCI_RANGE = (Decimal("0.1"), Decimal("5"))


class EstimateBasis(StrEnum):
    """Which estimate a figure is."""

    NATIONAL = "national"
    LOCALITY = "locality"


@dataclass(frozen=True)
class Locality:
    """A Medicare payment locality and its three geographic practice cost indices (CMS's GPCI file)."""

    name: str
    work: Decimal
    pe: Decimal
    mp: Decimal


@dataclass(frozen=True)
class RateSettings:
    """An organization's choices for estimates: its locality (None: national) and conversion factor."""

    locality: Locality | None = None
    qualifying_apm: bool = False


NATIONAL = RateSettings()


@dataclass(frozen=True)
class Estimate:
    """The estimate for one unit of a code, and which estimate it is."""

    amount: Decimal | None
    basis: EstimateBasis
    conversion_factor: Decimal | None = None
    year: int | None = None
    # Why the figure is not the estimate the settings ask for (no RVUs in the rule set), else "".
    fallback: str = ""

    def times(self, units: int) -> Decimal | None:
        """The estimate for `units` units, or None when the rule set has no figure."""
        return None if self.amount is None else self.amount * units


def conversion_factor(rule_set: RuleSet, settings: RateSettings) -> Decimal | None:
    """The conversion factor the settings choose from the rule set (None: the rule set has none)."""
    cf = rule_set.conversion_factor
    if cf is None:
        return None
    if settings.qualifying_apm:
        if cf.qualifying_apm is None:
            raise ConfigError(f"The rule set {rule_set.payer}-{rule_set.year} has no qualifying-APM conversion "
                              "factor.", f"Remove conversion_factor from the organization's [{SETTINGS_TABLE}] "
                              "table, or add conversion_factor.qualifying_apm to the rule file.")
        return cf.qualifying_apm
    return cf.amount


def estimate(code: Code, rule_set: RuleSet, settings: RateSettings = NATIONAL) -> Estimate:
    """One unit of `code`: the national or locality non-facility estimate, to the cent."""
    rate = code.rate
    cf = conversion_factor(rule_set, settings)
    if rate.rvu is None or cf is None:
        recorded = None if rate.amount is None else to_cents(Decimal(str(rate.amount)))
        asked = settings.locality is not None or settings.qualifying_apm
        why = ("the rule set has no RVUs for this code, so its national figure is shown"
               if asked and recorded is not None else "")
        return Estimate(recorded, EstimateBasis.NATIONAL, rate.conversion_factor, rate.year, why)
    rvu, place = rate.rvu, settings.locality
    if place is None:
        return Estimate(to_cents(rvu.total * cf), EstimateBasis.NATIONAL, cf, rate.year)
    weighted = rvu.work * place.work + rvu.pe * place.pe + rvu.mp * place.mp
    return Estimate(to_cents(weighted * cf), EstimateBasis.LOCALITY, cf, rate.year)


def estimate_label(rule_set: RuleSet, settings: RateSettings = NATIONAL) -> str:
    """What the estimates on a page are, in words: which basis, which locality, which conversion factor."""
    cf = conversion_factor(rule_set, settings)
    factor = f"conversion factor ${cf}" if cf is not None else "the rule set's national figures"
    if settings.qualifying_apm:
        factor += " (qualifying APM participant)"
    place = settings.locality
    if place is None:
        return f"national estimate, non-facility, {factor}; not a payment amount"
    return (f"locality estimate for {place.name} (GPCIs: work {place.work}, practice expense {place.pe}, "
            f"malpractice {place.mp}), non-facility, {factor}; not a payment amount")


@dataclass(frozen=True)
class Pricing:
    """A rule set with an organization's rate settings: how every page prices a billed code."""

    rule_set: RuleSet
    settings: RateSettings = NATIONAL

    @property
    def label(self) -> str:
        """The words that go beside every estimate priced here."""
        return estimate_label(self.rule_set, self.settings)

    @property
    def basis(self) -> EstimateBasis:
        """Locality when the organization names its GPCIs, else national."""
        return EstimateBasis.LOCALITY if self.settings.locality else EstimateBasis.NATIONAL

    def unit(self, code: str, recorded: float | None = None) -> Estimate:
        """One unit of `code`; a code the rule set lacks keeps the national figure recorded with it."""
        try:
            rule = self.rule_set.code(code)
        except KeyError:
            amount = None if recorded is None else to_cents(Decimal(str(recorded)))
            return Estimate(amount, EstimateBasis.NATIONAL, None, None,
                            f"{code} is not in the rule set, so the figure recorded with it is shown"
                            if amount is not None and self.settings.locality else "")
        return estimate(rule, self.rule_set, self.settings)


@dataclass(frozen=True)
class CostShare:
    """The patient's coinsurance for a month of one program: from its cheapest month to its fullest."""

    program: str
    low: Decimal
    low_codes: tuple[tuple[str, int], ...]
    high: Decimal
    high_codes: tuple[tuple[str, int], ...]
    share: Decimal
    basis: EstimateBasis


def _months(family: Family, price: Pricing) -> list[tuple[Decimal, tuple[tuple[str, int], ...]]]:
    """Each base code alone and with its add-ons at their cap, as (estimate, codes), where priced."""
    out: list[tuple[Decimal, tuple[tuple[str, int], ...]]] = []
    for key, code in family.codes.items():
        if code.base_codes:
            continue
        base = price.unit(key).amount
        if base is None:
            continue
        out.append((base, ((key, 1),)))
        addons = [(ak, a) for ak, a in family.codes.items() if key in a.base_codes]
        if family.time_based:
            # Time-based: the first add-on, as the evaluator bills it, at its cap.
            addons = addons[:1]
        for ak, addon in addons:
            extra = price.unit(ak).times(addon.max_units)
            if extra is not None:
                out.append((base + extra, ((key, 1), (ak, addon.max_units))))
    return out


def monthly_cost_share(price: Pricing, program: str) -> CostShare | None:
    """The coinsurance range of a month of `program` (a consent program), or None when unpriced."""
    rules = price.rule_set
    if rules.cost_sharing is None:
        return None
    families = ([rules.families[program]] if program in rules.families
                else [f for f in rules.families.values() if program in f.consent_programs])
    months = [m for fam in families for m in _months(fam, price)]
    if not months:
        return None
    share = rules.cost_sharing.coinsurance
    low = min(months, key=lambda m: m[0])
    high = max(months, key=lambda m: m[0])
    return CostShare(program, to_cents(low[0] * share), low[1], to_cents(high[0] * share), high[1], share,
                     price.basis)


def _gpci(value: object, key: str, source: str) -> Decimal:
    number = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            number = None
    low, high = _GPCI_RANGE
    if number is None or not number.is_finite() or not low <= number <= high:
        raise ConfigError(f"{source}: [{SETTINGS_TABLE}] {key} = {value!r} is not a GPCI.",
                          f"Write the locality's {_GPCI_KEYS[key]} GPCI from CMS's GPCI file as a number "
                          f"between {low} and {high}, for example {key} = 1.012.")
    return number


def rate_settings(table: object, source: str, rule_set: RuleSet) -> RateSettings:
    """Validate an organization's `[medicare_rates]` table; None or no table means national estimates."""
    if table is None:
        return NATIONAL
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: {SETTINGS_TABLE} must be a table.",
                          f"Write it as [{SETTINGS_TABLE}] with locality, work_gpci, pe_gpci and mp_gpci.")
    unknown = sorted(set(table) - _SETTINGS_KEYS)
    if unknown:
        raise ConfigError(f"{source}: [{SETTINGS_TABLE}] has unknown key(s) {', '.join(unknown)}.",
                          f"Use only {', '.join(sorted(_SETTINGS_KEYS))}.")
    choice = str(table.get("conversion_factor", STANDARD_CF))
    if choice not in (STANDARD_CF, QUALIFYING_APM_CF):
        raise ConfigError(f"{source}: [{SETTINGS_TABLE}] conversion_factor = {choice!r} is not a choice.",
                          f'Use "{STANDARD_CF}" (the default) or "{QUALIFYING_APM_CF}" (qualifying APM '
                          "participants only).")
    given = [key for key in _GPCI_KEYS if key in table]
    locality = None
    if given or "locality" in table:
        missing = [key for key in ("locality", *_GPCI_KEYS) if key not in table]
        if missing:
            raise ConfigError(f"{source}: [{SETTINGS_TABLE}] lacks {', '.join(missing)}.",
                              "A locality needs its name and all three GPCIs (work_gpci, pe_gpci, mp_gpci) "
                              "from CMS's GPCI file for the rule set's year; leave all four out for national "
                              "estimates.")
        name = str(table["locality"]).strip()
        if not name:
            raise ConfigError(f"{source}: [{SETTINGS_TABLE}] locality is empty.",
                              "Name the Medicare payment locality, as CMS's GPCI file does.")
        locality = Locality(name, *(_gpci(table[key], key, source) for key in _GPCI_KEYS))
    settings = RateSettings(locality, choice == QUALIFYING_APM_CF)
    # Fails now, not on a page, when the rule set has no qualifying-APM conversion factor.
    conversion_factor(rule_set, settings)
    return settings
