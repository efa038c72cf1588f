"""What an EHR's FHIR server accepts, read from its CapabilityStatement."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class EhrCapabilities:
    """The interactions a FHIR server offers, per resource type and system-wide."""

    batch: bool = False
    transaction: bool = False
    interactions: dict[str, frozenset[str]] = field(default_factory=dict)
    conditional_create: frozenset[str] = frozenset()
    search_params: dict[str, frozenset[str]] = field(default_factory=dict)

    def can(self, resource_type: str, interaction: str) -> bool:
        """Whether `interaction` (read, search-type, create, update) is offered for the type."""
        return interaction in self.interactions.get(resource_type, frozenset())

    def to_json(self) -> dict:
        """JSON-safe form for storage."""
        return {"batch": self.batch, "transaction": self.transaction,
                "interactions": {k: sorted(v) for k, v in self.interactions.items()},
                "conditional_create": sorted(self.conditional_create),
                "search_params": {k: sorted(v) for k, v in self.search_params.items()}}

    @classmethod
    def from_json(cls, data: dict) -> EhrCapabilities:
        """Inverse of `to_json`."""
        return cls(batch=bool(data.get("batch")), transaction=bool(data.get("transaction")),
                   interactions={k: frozenset(v) for k, v in (data.get("interactions") or {}).items()},
                   conditional_create=frozenset(data.get("conditional_create") or ()),
                   search_params={k: frozenset(v) for k, v in (data.get("search_params") or {}).items()})


def parse_capability_statement(doc: dict) -> EhrCapabilities:
    """Read the server-mode `rest` entry of a CapabilityStatement; tolerate missing parts."""
    rests = [r for r in doc.get("rest") or [] if isinstance(r, dict) and r.get("mode", "server") == "server"]
    batch = transaction = False
    interactions: dict[str, frozenset[str]] = {}
    conditional: set[str] = set()
    params: dict[str, frozenset[str]] = {}
    for rest in rests:
        codes = {str(i.get("code")) for i in rest.get("interaction") or [] if isinstance(i, dict)}
        batch = batch or "batch" in codes
        transaction = transaction or "transaction" in codes
        for resource in rest.get("resource") or []:
            if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
                continue
            kind = resource["type"]
            interactions[kind] = frozenset(str(i.get("code")) for i in resource.get("interaction") or []
                                           if isinstance(i, dict))
            if resource.get("conditionalCreate") is True:
                conditional.add(kind)
            params[kind] = frozenset(str(p.get("name")) for p in resource.get("searchParam") or []
                                     if isinstance(p, dict))
    return EhrCapabilities(batch=batch, transaction=transaction, interactions=interactions,
                           conditional_create=frozenset(conditional), search_params=params)


async def fetch_capabilities(http: httpx.AsyncClient, fhir_base: str) -> tuple[EhrCapabilities, str | None]:
    """Read the server's CapabilityStatement; on failure, assume the least and say why."""
    try:
        response = await http.get(f"{fhir_base.rstrip('/')}/metadata",
                                  headers={"Accept": "application/fhir+json"})
        response.raise_for_status()
        doc = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        # Without the statement the app still works: no batch, so reads run concurrently.
        return EhrCapabilities(), f"CapabilityStatement unavailable ({type(exc).__name__})"
    if not isinstance(doc, dict) or doc.get("resourceType") != "CapabilityStatement":
        return EhrCapabilities(), "the EHR's /metadata is not a CapabilityStatement"
    return parse_capability_statement(doc), None
