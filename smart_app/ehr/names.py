"""People's names and identifiers as FHIR writes them (HumanName, NPI)."""

from __future__ import annotations

from dataclasses import dataclass

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"


def human_name(resource: dict) -> str | None:
    """A person's display name from FHIR HumanName (official first)."""
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    names.sort(key=lambda n: n.get("use") != "official")
    for name in names:
        if name.get("text"):
            return str(name["text"])
        parts = [*map(str, name.get("prefix") or []), *map(str, name.get("given") or []),
                 str(name.get("family") or "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return None


def npi(resource: dict) -> str | None:
    """The National Provider Identifier of a Practitioner or Organization, if it carries one."""
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == NPI_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    return None


MBI_SYSTEM = "http://hl7.org/fhir/sid/us-mbi"
# Coverage.type codes that say Medicare: SOPT (payer typology) 1x, and the plain words.
_MEDICARE_SOPT_PREFIX = "1"


@dataclass(frozen=True)
class PractitionerDetails:
    """A practitioner as a claim names them: name, credentials and NPI, each "" when the EHR has none."""

    reference: str
    name: str = ""
    credentials: str = ""
    npi: str = ""


def credentials(resource: dict) -> str:
    """ "MD", "RN, CCM": the official name's suffixes, else the qualifications' codes or text."""
    names = sorted((n for n in resource.get("name") or [] if isinstance(n, dict)),
                   key=lambda n: n.get("use") != "official")
    for name in names:
        suffixes = [str(s) for s in name.get("suffix") or [] if s]
        if suffixes:
            return ", ".join(suffixes)
    found = []
    for qualification in resource.get("qualification") or []:
        code = qualification.get("code") or {} if isinstance(qualification, dict) else {}
        coding = next((c for c in code.get("coding") or [] if isinstance(c, dict) and c.get("code")), None)
        label = str(coding["code"]) if coding else str(code.get("text") or "")
        if label:
            found.append(label)
    return ", ".join(dict.fromkeys(found))


def practitioner_details(reference: str, resource: dict | None) -> PractitionerDetails:
    """What a claim shows of a practitioner read from the EHR (None: not readable, reference only)."""
    if not resource:
        return PractitionerDetails(reference)
    return PractitionerDetails(reference, human_name(resource) or "", credentials(resource), npi(resource) or "")


def _identifier_mbi(resource: dict) -> str | None:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == MBI_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    return None


def _is_medicare(coverage: dict) -> bool:
    concept = coverage.get("type") or {}
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and str(coding.get("system", "")).endswith("sopt") \
                and str(coding.get("code", "")).startswith(_MEDICARE_SOPT_PREFIX):
            return True
    words = " ".join([str(concept.get("text") or "")] + [str((p or {}).get("display") or "")
                                                          for p in coverage.get("payor") or []]).lower()
    return "medicare" in words


def medicare_id(patient: dict, coverages: list[dict]) -> str | None:
    """The Medicare Beneficiary Identifier: a us-mbi identifier on the Patient or an active Coverage, else an
    active Medicare Coverage's subscriberId (US Core allows it there and vendors put it there)."""
    found = _identifier_mbi(patient)
    active = [c for c in coverages if isinstance(c, dict) and c.get("status", "active") == "active"]
    for coverage in active:
        found = found or _identifier_mbi(coverage)
    for coverage in active:
        if not found and _is_medicare(coverage) and coverage.get("subscriberId"):
            found = str(coverage["subscriberId"])
    return found
