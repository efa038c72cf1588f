"""Pydantic models of a rule file (one payer, one calendar year) and its cross-reference checks."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["clinical-staff", "care-manager", "billing-practitioner", "psychiatric-consultant"]
ROLES: tuple[str, ...] = ("clinical-staff", "care-manager", "billing-practitioner",
                          "psychiatric-consultant")

# The evidence vocabulary: each name is checked by a function in evaluate.py.
Evidence = Literal[
    "consent",
    "code_consent",
    "initiating_visit",
    "chronic_conditions",
    "high_risk_condition",
    "complexity_moderate_or_high",
    "behavioral_health_condition",
    "rating_scale_this_month",
    "cocm_episode",
    "qmb_status",
    "tcm_interactive_contact",
    "tcm_face_to_face",
    "tcm_mdm",
    "tcm_once_per_30_days",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    kind: Literal["final_rule", "cms_file", "mln", "faq", "cpt", "mac", "third_party", "other"]
    title: str
    citation: str | None = None
    url: str | None = None
    note: str | None = None


class Period(_Strict):
    start: dt.date
    end: dt.date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        return self


class TimeRule(_Strict):
    counting: Literal["full", "midpoint", "none"]
    unit_minutes: int | None = Field(default=None, gt=0)
    min_minutes: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> TimeRule:
        if self.counting == "none":
            if self.unit_minutes is not None or self.min_minutes is not None:
                raise ValueError("a code with counting 'none' takes no unit_minutes/min_minutes")
            return self
        if self.unit_minutes is None or self.min_minutes is None:
            raise ValueError(f"counting '{self.counting}' needs unit_minutes and min_minutes")
        if self.counting == "full" and self.min_minutes != self.unit_minutes:
            raise ValueError("counting 'full' needs min_minutes equal to unit_minutes")
        if self.counting == "midpoint" and self.min_minutes > self.unit_minutes:
            raise ValueError("min_minutes may not exceed unit_minutes")
        return self


class Exclusion(_Strict):
    codes: tuple[str, ...] = Field(min_length=1)
    scope: Literal["same-practitioner", "any-practitioner"]
    source: str
    note: str | None = None
    conservative_choice: str | None = None


CENT = Decimal("0.01")


def to_cents(amount: Decimal) -> Decimal:
    """Round money to the cent the way CMS publishes fee schedule amounts (half up)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


class Rvus(_Strict):
    """Relative value units of one code in one setting, as CMS's relative value file gives them."""

    work: Decimal = Field(ge=0)
    pe: Decimal = Field(ge=0)
    mp: Decimal = Field(ge=0)
    total: Decimal = Field(ge=0)


class Rate(_Strict):
    """A code's national estimate and where it comes from.

    `checked` says how the figure was checked: `cms-file` (read from CMS's relative value file,
    named by `source`, by `smart-app rules import-rvu`; the amounts are the RVU totals times the
    conversion factor, which the loader recomputes) or `secondary` (a secondary source, not checked
    against a CMS file; it needs its `year` and a `note`).
    """

    amount: float | None = Field(ge=0)
    year: int | None
    source: str
    checked: Literal["cms-file", "secondary"]
    facility_amount: float | None = Field(default=None, ge=0)
    conversion_factor: Decimal | None = Field(default=None, gt=0)
    rvu: Rvus | None = None
    facility_rvu: Rvus | None = None
    status: str | None = None
    global_days: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Rate:
        if self.checked == "secondary":
            if self.amount is not None and not (self.note and self.year):
                raise ValueError("a secondary rate needs its year and a note saying where it comes from")
            return self
        cf, rvu, fac = self.conversion_factor, self.rvu, self.facility_rvu
        if cf is None or rvu is None or fac is None or self.amount is None or self.facility_amount is None:
            raise ValueError("a rate checked against the CMS file needs amount, facility_amount, "
                             "conversion_factor, rvu and facility_rvu")
        for label, rvus, amount in (("amount", rvu, self.amount), ("facility_amount", fac, self.facility_amount)):
            expected = to_cents(rvus.total * cf)
            if Decimal(str(amount)) != expected:
                raise ValueError(f"{label} {amount} is not the RVU total {rvus.total} x conversion factor "
                                 f"{cf} = {expected}")
        return self


class ConditionCount(_Strict):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class Mue(_Strict):
    units: int = Field(ge=1)
    source: str


class TcmRule(_Strict):
    face_to_face_days: int = Field(gt=0)
    mdm: tuple[Literal["low", "moderate", "high"], ...] = Field(min_length=1)


class Code(_Strict):
    descriptor: str
    performer: Role
    counted_roles: tuple[Role, ...]
    time: TimeRule
    base_codes: tuple[str, ...] = ()
    max_units: int = Field(ge=1)
    # Where the cap comes from (a CPT descriptor, a CMS publication) or, for a cap chosen where
    # neither states one, the source it was chosen against; the reasoning goes in conservative_choice.
    max_units_source: str
    # CMS's NCCI Medically Unlikely Edit per date of service, where one was found: an upper bound
    # on what one claim line can carry, never a reason to bill more than max_units.
    mue: Mue | None = None
    # Consent this code needs besides its family's (evidence `code_consent`): any of these programs.
    consent_programs: tuple[str, ...] = ()
    per: Literal["month", "discharge"] = "month"
    evidence: tuple[Evidence, ...]
    chronic_conditions: ConditionCount | None = None
    episode_month: Literal["initial", "subsequent", "any"] | None = None
    qmb: bool | None = None
    tcm: TcmRule | None = None
    exclusions: tuple[Exclusion, ...] = ()
    rate: Rate
    effective: Period
    sources: tuple[str, ...] = Field(min_length=1)
    conservative_choice: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Code:
        if "chronic_conditions" in self.evidence and self.chronic_conditions is None:
            raise ValueError("evidence 'chronic_conditions' needs a chronic_conditions: {min, max}")
        if ("code_consent" in self.evidence) != bool(self.consent_programs):
            raise ValueError("evidence 'code_consent' and consent_programs go together")
        if self.mue is not None and self.mue.units < self.max_units:
            raise ValueError(f"max_units {self.max_units} is above the NCCI MUE of {self.mue.units} "
                             "units a claim line can carry")
        if "qmb_status" in self.evidence and self.qmb is None:
            raise ValueError("evidence 'qmb_status' needs qmb: true or false")
        if "cocm_episode" in self.evidence and self.episode_month in (None, "any"):
            raise ValueError("evidence 'cocm_episode' needs episode_month initial or subsequent")
        tcm_evidence = any(e.startswith("tcm_") for e in self.evidence)
        if tcm_evidence and self.tcm is None:
            raise ValueError("TCM evidence needs a tcm: {face_to_face_days, mdm} block")
        if self.time.counting != "none" and not self.counted_roles:
            raise ValueError("a time-based code needs at least one counted role")
        if "psychiatric-consultant" in self.counted_roles:
            raise ValueError("psychiatric-consultant minutes never count toward a code's time")
        return self


class Family(_Strict):
    title: str
    time_program: str
    consent_programs: tuple[str, ...]
    initiating_visit_months: int | None = Field(default=None, gt=0)
    time_based: bool = True
    warn_if_missing: tuple[Literal["care_plan"], ...] = ()
    sources: tuple[str, ...] = Field(min_length=1)
    notes: str | None = None
    conservative_choice: str | None = None
    codes: dict[str, Code] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Family:
        for key, code in self.codes.items():
            if (code.time.counting == "none") == self.time_based:
                kind = "time-based" if self.time_based else "not time-based"
                raise ValueError(f"code {key}: its time rule does not fit a {kind} family")
            if "consent" in code.evidence and not self.consent_programs:
                raise ValueError(f"code {key}: evidence 'consent' needs consent_programs")
            if "initiating_visit" in code.evidence and self.initiating_visit_months is None:
                raise ValueError(f"code {key}: evidence 'initiating_visit' needs "
                                 "initiating_visit_months on the family")
            for base in code.base_codes:
                if base not in self.codes:
                    raise ValueError(f"code {key}: base code {base} is not in this family")
                base_rule = self.codes[base]
                if base_rule.base_codes:
                    raise ValueError(f"code {key}: base code {base} is itself an add-on")
                # These two keep "more minutes never bill less" true: an add-on that appears
                # with more minutes can neither count other people's time nor add exclusions.
                if set(code.counted_roles) != set(base_rule.counted_roles):
                    raise ValueError(f"code {key}: counted_roles must match base code {base}")
                base_excl = {c for e in base_rule.exclusions for c in e.codes}
                extra = {c for e in code.exclusions for c in e.codes} - base_excl - {base}
                # Outside time-based families an add-on never replaces its base code's option (the
                # base alone stays a choice beside base + add-on), so its own exclusions cannot
                # make more minutes bill less.
                if extra and self.time_based:
                    raise ValueError(f"code {key}: add-on excludes {sorted(extra)} which base "
                                     f"code {base} does not")
        return self


class RatingScale(_Strict):
    loinc: tuple[str, ...] = ()
    title: str
    # The instrument's highest total score; a score captured in the app must lie in 0..max_score.
    max_score: int | None = Field(default=None, ge=1)


class BehavioralHealth(_Strict):
    icd10cm_prefixes: tuple[str, ...]
    extra_codes: tuple[str, ...] = ()
    source: str
    note: str | None = None


class ConditionRules(_Strict):
    chronic_indicator: Literal["hcup-cci"]
    chronic_source: str
    count_distinct_by: Literal["code", "category"]
    countable_clinical_status: tuple[str, ...] = Field(min_length=1)
    skipped_verification_status: tuple[str, ...] = ()
    conservative_choice: str | None = None
    behavioral_health: BehavioralHealth


class ConversionFactor(_Strict):
    amount: Decimal = Field(gt=0)
    source: str
    # The conversion factor for qualifying APM participants, where the year has a second one.
    qualifying_apm: Decimal | None = Field(default=None, gt=0)
    qualifying_apm_source: str | None = None
    note: str | None = None


class CostSharing(_Strict):
    """The patient's share of the allowed amount (Part B coinsurance), shown when consent is taken."""

    coinsurance: Decimal = Field(gt=0, lt=1)
    source: str
    note: str | None = None


class RoleInfo(_Strict):
    description: str


class RuleSet(_Strict):
    """A whole rule file: payer, year, sources, condition rules and code families."""

    schema_version: Literal[1]
    payer: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    year: int = Field(ge=2015, le=2100)
    title: str
    effective: Period
    conversion_factor: ConversionFactor | None = None
    cost_sharing: CostSharing | None = None
    sources: dict[str, Source] = Field(min_length=1)
    roles: dict[Role, RoleInfo]
    conditions: ConditionRules
    rating_scales: dict[str, RatingScale] = Field(min_length=1)
    families: dict[str, Family] = Field(min_length=1)

    def scale_loinc_codes(self) -> tuple[str, ...]:
        """Every LOINC code of a validated rating scale, in file order."""
        return tuple(code for scale in self.rating_scales.values() for code in scale.loinc)

    @model_validator(mode="after")
    def _cross_references(self) -> RuleSet:
        problems: list[str] = []
        all_codes: dict[str, str] = {}
        for fam_key, fam in self.families.items():
            for code_key in fam.codes:
                if code_key in all_codes:
                    problems.append(f"families.{fam_key}.codes.{code_key}: code also in "
                                    f"family {all_codes[code_key]}")
                all_codes[code_key] = fam_key

        def need_source(path: str, key: str) -> None:
            if key not in self.sources:
                problems.append(f"{path}: unknown source '{key}' (not under sources:)")

        if self.conversion_factor:
            need_source("conversion_factor.source", self.conversion_factor.source)
            if self.conversion_factor.qualifying_apm is not None:
                need_source("conversion_factor.qualifying_apm_source",
                            self.conversion_factor.qualifying_apm_source or "")
        if self.cost_sharing:
            need_source("cost_sharing.source", self.cost_sharing.source)
        need_source("conditions.chronic_source", self.conditions.chronic_source)
        need_source("conditions.behavioral_health.source",
                    self.conditions.behavioral_health.source)
        for fam_key, fam in self.families.items():
            for i, key in enumerate(fam.sources):
                need_source(f"families.{fam_key}.sources[{i}]", key)
            for code_key, code in fam.codes.items():
                base = f"families.{fam_key}.codes.{code_key}"
                for i, key in enumerate(code.sources):
                    need_source(f"{base}.sources[{i}]", key)
                need_source(f"{base}.rate.source", code.rate.source)
                need_source(f"{base}.max_units_source", code.max_units_source)
                if code.mue is not None:
                    need_source(f"{base}.mue.source", code.mue.source)
                if code.rate.checked == "cms-file" and self.conversion_factor is not None and (
                        code.rate.conversion_factor != self.conversion_factor.amount):
                    problems.append(f"{base}.rate.conversion_factor: {code.rate.conversion_factor} is not "
                                    f"the file's conversion factor {self.conversion_factor.amount}")
                for j, exc in enumerate(code.exclusions):
                    need_source(f"{base}.exclusions[{j}].source", exc.source)
                    for other in exc.codes:
                        if other not in all_codes:
                            problems.append(f"{base}.exclusions[{j}]: unknown code '{other}'")
                        elif other == code_key:
                            problems.append(f"{base}.exclusions[{j}]: a code cannot exclude "
                                            "itself")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def code_family(self) -> dict[str, str]:
        """Map every code to the key of its family."""
        return {c: f for f, fam in self.families.items() for c in fam.codes}

    def code(self, code: str) -> Code:
        """The rule for `code` (KeyError if the file has no such code)."""
        return self.families[self.code_family()[code]].codes[code]
