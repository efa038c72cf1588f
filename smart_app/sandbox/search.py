"""FHIR search: parameter parsing, matching, sorting and paging over the store."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlencode

from smart_app.sandbox.dates import compare, parse_range, split_prefix, value_range
from smart_app.sandbox.outcome import FhirError
from smart_app.sandbox.references import patient_of, reference_id
from smart_app.sandbox.store import FhirStore

DEFAULT_COUNT = 100
MAX_COUNT = 1000

TOKEN_PARAMS = {
    "clinical-status": "clinicalStatus",
    "verification-status": "verificationStatus",
    "category": "category",
    "code": "code",
    "status": "status",
    "identifier": "identifier",
    "type": "type",
    "intent": "intent",
    "gender": "gender",
    "class": "class",
    "scope": "scope",
    "active": "active",
    "use": "use",
}
REFERENCE_PARAMS = {
    "subject": "subject",
    "beneficiary": "beneficiary",
    "encounter": "encounter",
    "practitioner": "practitioner",
    "organization": "organization",
    "requester": "requester",
    "owner": "owner",
    "focus": "focus",
}
# The `date` parameter of each type: the first field present is the one compared.
DATE_FIELDS = {
    "Observation": ("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
    "Encounter": ("period",),
    "Condition": ("onsetDateTime", "onsetPeriod", "recordedDate"),
    "Consent": ("dateTime",),
    "CarePlan": ("period",),
    "CareTeam": ("period",),
    "Coverage": ("period",),
    "Procedure": ("performedDateTime", "performedPeriod"),
    "Claim": ("created",),
    "Task": ("authoredOn",),
    "MedicationRequest": ("authoredOn",),
    "DocumentReference": ("date",),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod"),
}
DEFAULT_DATE_FIELDS = ("effectiveDateTime", "effectivePeriod", "period", "date", "dateTime",
                       "authoredOn", "created", "issued")
OTHER_DATE_PARAMS = {
    "onset-date": ("onsetDateTime", "onsetPeriod"),
    "recorded-date": ("recordedDate",),
    "birthdate": ("birthDate",),
    "authored": ("authoredOn",),
    "created": ("created",),
}
CONTROL_PARAMS = {"_count", "_offset", "_sort", "_summary", "_total", "_format", "_elements"}

Matcher = Callable[[dict], bool]


@dataclass
class SearchResult:
    """One page of matches plus what is needed to link the other pages."""

    total: int
    resources: list[dict]
    offset: int
    count: int
    summary_count: bool = False


def patient_ids(values: Iterable[str]) -> list[str]:
    """Patient ids from `Patient/x`, absolute URLs or bare ids."""
    return [reference_id(v, "Patient") or v for v in values if v]


def _token_values(node: object) -> list[tuple[str | None, str]]:
    if node is None:
        return []
    if isinstance(node, list):
        return [pair for item in node for pair in _token_values(item)]
    if isinstance(node, bool):
        return [(None, "true" if node else "false")]
    if isinstance(node, str | int):
        return [(None, str(node))]
    if isinstance(node, dict):
        if "coding" in node:
            return _token_values(node["coding"])
        if "value" in node:  # Identifier
            return [(node.get("system"), str(node["value"]))]
        if "code" in node:  # Coding
            return [(node.get("system"), str(node["code"]))]
    return []


def _token_matches(pairs: list[tuple[str | None, str]], wanted: str) -> bool:
    if "|" not in wanted:
        return any(code == wanted for _, code in pairs)
    system, code = wanted.split("|", 1)
    if not system:
        return any(s is None and c == code for s, c in pairs)
    if not code:
        return any(s == system for s, _ in pairs)
    return any(s == system and c == code for s, c in pairs)


def _reference_matches(node: object, wanted: str) -> bool:
    refs = node if isinstance(node, list) else [node]
    for ref in refs:
        text = ref.get("reference") if isinstance(ref, dict) else None
        if not text:
            continue
        tail = text.split("/_history/")[0].split("/")
        if "/" in wanted:
            if tail[-2:] == wanted.split("/")[-2:]:
                return True
        elif tail[-1] == wanted:
            return True
    return False


def _name_text(resource: dict) -> list[str]:
    words: list[str] = []
    for name in resource.get("name") or []:
        if isinstance(name, dict):
            words += [name.get("family") or "", *(name.get("given") or []), name.get("text") or ""]
    return [w.lower() for w in words if w]


def _date_matcher(fields: tuple[str, ...], raw: str) -> Matcher:
    prefix, text = split_prefix(raw)
    try:
        wanted = parse_range(text)
    except ValueError as exc:
        raise FhirError(400, f"invalid date search value {raw!r}") from exc

    def match(resource: dict) -> bool:
        for name in fields:
            node: object = resource
            for part in name.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                found = value_range(node)
                return found is not None and compare(prefix, found, wanted)
        return False

    return match


def build_matcher(rtype: str, name: str, value: str, typed_references: bool = False) -> Matcher | None:
    """A predicate for one `name=value` occurrence (comma = OR); None for unknown parameters.

    `typed_references`: a reference value must name its type (`Patient/x`); a bare id matches nothing, as on
    servers that compare the stored reference text (the `strict` profile).
    """
    base, _, modifier = name.partition(":")
    values = [v for v in value.split(",") if v != ""]
    reference_param = base == "patient" or base in REFERENCE_PARAMS
    if modifier and not (reference_param and modifier[:1].isupper()):
        return None  # :text, :not, :missing... are not supported; ignored like unknown params
    if reference_param and typed_references and not modifier:
        values = [v for v in values if "/" in v]
        if not values:
            return lambda r: False
    if base == "patient":
        ids = set(patient_ids(values))
        return lambda r: patient_of(r) in ids
    if base in REFERENCE_PARAMS:
        field = REFERENCE_PARAMS[base]
        return lambda r: any(_reference_matches(r.get(field), v) for v in values)
    if base in TOKEN_PARAMS:
        field = TOKEN_PARAMS[base]
        return lambda r: any(_token_matches(_token_values(r.get(field)), v) for v in values)
    if base in ("date", "_lastUpdated", *OTHER_DATE_PARAMS):
        if base == "date":
            fields = DATE_FIELDS.get(rtype, DEFAULT_DATE_FIELDS)
        elif base == "_lastUpdated":
            fields = ("meta.lastUpdated",)
        else:
            fields = OTHER_DATE_PARAMS[base]
        matchers = [_date_matcher(fields, v) for v in values]
        return lambda r: any(m(r) for m in matchers)
    if base in ("name", "family", "given"):
        wanted = [v.lower() for v in values]
        return lambda r: any(w.startswith(v) for w in _name_text(r) for v in wanted)
    return None


def _sort_key(rtype: str, key: str) -> Callable[[dict], tuple]:
    if key in ("date", "_lastUpdated"):
        fields = DATE_FIELDS.get(rtype, DEFAULT_DATE_FIELDS) if key == "date" else None

        def by_date(r: dict) -> tuple:
            nodes = [r.get(f) for f in fields] if fields else [(r.get("meta") or {}).get(
                "lastUpdated")]
            for node in nodes:
                found = value_range(node) if node is not None else None
                if found:
                    return (1, found[0].isoformat())
            return (0, "")

        return by_date
    return lambda r: (1, r.get("id") or "")


def run_search(store: FhirStore, rtype: str, params: list[tuple[str, str]],
               restrict_patient: str | None = None, allow: Matcher | None = None,
               typed_references: bool = False) -> SearchResult:
    """Search `rtype`; `restrict_patient` limits to one compartment, `allow` filters further;
    `typed_references` as in `build_matcher`."""
    matchers: list[Matcher] = []
    ids: list[str] | None = None
    narrow_patient = restrict_patient
    count, offset, sort, summary_count = DEFAULT_COUNT, 0, "", False
    for name, value in params:
        if name == "_id":
            wanted = [v for v in value.split(",") if v]
            ids = wanted if ids is None else [i for i in ids if i in wanted]
        elif name == "_count":
            count = _int_param(name, value, 0, MAX_COUNT)
        elif name == "_offset":
            offset = _int_param(name, value, 0, 10**9)
        elif name == "_sort":
            sort = value
        elif name == "_summary":
            summary_count = value == "count"
        elif name in CONTROL_PARAMS:
            continue
        else:
            matcher = build_matcher(rtype, name, value, typed_references)
            if matcher is not None:
                matchers.append(matcher)
            base = name.split(":", 1)[0]
            if base in ("patient", "subject", "beneficiary") and narrow_patient is None:
                values = patient_ids(value.split(","))
                if len(values) == 1 and "/" not in values[0]:
                    narrow_patient = values[0]  # use the (type, patient) index
    if rtype == "Patient" and restrict_patient is not None:
        ids = [restrict_patient] if ids is None else [i for i in ids if i == restrict_patient]
        narrow_patient = None
    rows = store.candidates(rtype, patient=narrow_patient, ids=ids)
    if allow is not None:
        matchers.append(allow)
    found = [r for r in rows if all(m(r) for m in matchers)]
    for key in reversed([k for k in sort.split(",") if k]):
        found.sort(key=_sort_key(rtype, key.lstrip("-")), reverse=key.startswith("-"))
    page = [] if summary_count else found[offset: offset + count]
    return SearchResult(len(found), page, offset, count, summary_count)


def _int_param(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise FhirError(400, f"{name} must be an integer") from exc
    return max(low, min(high, number))


def searchset_bundle(result: SearchResult, type_url: str,
                     params: list[tuple[str, str]]) -> dict:
    """A searchset Bundle with total, self/next/previous links and full URLs."""
    kept = [(k, v) for k, v in params if k != "_offset"]

    def link(offset: int) -> str:
        query = urlencode([*kept, ("_offset", str(offset))]) if offset else urlencode(kept)
        return f"{type_url}?{query}" if query else type_url

    links = [{"relation": "self", "url": link(result.offset)}]
    if not result.summary_count and result.count and result.offset + result.count < result.total:
        links.append({"relation": "next", "url": link(result.offset + result.count)})
    if result.offset > 0:
        links.append({"relation": "previous", "url": link(max(0, result.offset - result.count))})
    base = type_url.rsplit("/", 1)[0]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": result.total,
        "link": links,
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
             "search": {"mode": "match"}}
            for r in result.resources
        ],
    }
