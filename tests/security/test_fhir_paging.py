"""Threat: an EHR's search answer (or someone between it and the app) points the next page at another server,
which would receive the session's bearer token. The app reads pages only from the FHIR base's own origin."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from smart_app.ehr.fhir_client import FhirClient
from smart_app.errors import EhrError
from tests.live_server import reserve_socket, serve_on, url_of


def bundle(*ids: str, next_url: str | None = None) -> dict:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {"resourceType": "Bundle", "type": "searchset", "link": links,
            "entry": [{"resource": {"resourceType": "Condition", "id": i}, "search": {"mode": "match"}} for i in ids]}


def ehr_app(next_url: str) -> Starlette:
    async def search(request: Request) -> JSONResponse:
        if request.query_params.get("page") == "2":
            return JSONResponse(bundle("c3"))
        return JSONResponse(bundle("c1", "c2", next_url=next_url))

    return Starlette(routes=[Route("/fhir/Condition", search)])


def collector_app(seen: list[dict[str, str]]) -> Starlette:
    async def anything(request: Request) -> JSONResponse:
        seen.append(dict(request.headers))
        return JSONResponse(bundle("stolen"))

    return Starlette(routes=[Route("/{path:path}", anything)])


async def search(base: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        client = FhirClient(http, base, "the-session-access-token")
        return await client.search("Condition", {"patient": "p1"})


def test_a_next_link_to_another_origin_is_refused_and_gets_no_token() -> None:
    seen: list[dict[str, str]] = []
    ehr_sock, other_sock = reserve_socket(), reserve_socket()
    ehr, other = url_of(ehr_sock), url_of(other_sock)
    with serve_on(other_sock, collector_app(seen)), serve_on(ehr_sock, ehr_app(f"{other}/fhir/Condition?page=2")):
        with pytest.raises(EhrError) as refused:
            asyncio.run(search(f"{ehr}/fhir"))
    assert seen == [], "the other server got no request, so no bearer token"
    assert f"points its next page at another server ({other})" in refused.value.message
    assert "paging links must stay on the FHIR server" in refused.value.hint


def test_next_links_on_the_fhir_servers_own_origin_are_followed() -> None:
    ehr_sock = reserve_socket()
    ehr = url_of(ehr_sock)
    # Absolute on the same origin, as most servers write them (a relative link resolves to the same origin).
    with serve_on(ehr_sock, ehr_app(f"{ehr}/fhir/Condition?page=2")):
        found = asyncio.run(search(f"{ehr}/fhir"))
    assert [r["id"] for r in found] == ["c1", "c2", "c3"]
