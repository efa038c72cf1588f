"""The EHR chart pages and the launch they embed."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.sandbox.helpers import APP_LAUNCH_URL, authorize, exchange, pkce, redirect_params


def iframe_src(html: str) -> str:
    match = re.search(r'<iframe[^>]*src="([^"]+)"', html)
    assert match, html
    return unescape(match.group(1))


def test_patient_list(http: httpx.Client) -> None:
    page = http.get("/ehr/")
    assert page.status_code == 200
    assert "Ada Alpha" in page.text and "1950-03-14" in page.text
    assert 'href="/ehr/chart/alpha"' in page.text


def test_chart_embeds_a_working_launch(http: httpx.Client, base: str) -> None:
    page = http.get("/ehr/chart/alpha")
    assert page.status_code == 200
    html = page.text
    assert "MRN-0001" in html and "Ada Alpha" in html and "female" in html
    for item in ("Summary", "Problems", "Medications", "Care coordination app"):
        assert item in html
    assert re.search(r'<iframe[^>]*title="[^"]+"', html)
    src = iframe_src(html)
    assert src.startswith(APP_LAUNCH_URL + "?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(src).query).items()}
    assert query["iss"] == f"{base}/fhir"
    verifier, challenge = pkce()
    params = redirect_params(authorize(http, base, launch=query["launch"], challenge=challenge))
    body = exchange(http, params["code"], verifier).json()
    assert body["patient"] == "alpha"
    assert body["encounter"] == "alpha-enc-2"  # the latest encounter


def test_user_picker_sets_the_launch_user(http: httpx.Client, base: str) -> None:
    page = http.get("/ehr/chart/alpha", params={"user": "pract-billing"})
    assert "sandbox_user=pract-billing" in page.headers["set-cookie"]
    assert "Care manager" in page.text and "Billing practitioner" in page.text
    assert re.search(r'value="pract-billing" selected', page.text)
    launch = parse_qs(urlsplit(iframe_src(page.text)).query)["launch"][0]
    verifier, challenge = pkce()
    params = redirect_params(authorize(http, base, launch=launch, challenge=challenge))
    from tests.sandbox.helpers import decode_jwt

    body = exchange(http, params["code"], verifier).json()
    assert decode_jwt(body["id_token"], http.get("/auth/jwks").json())["sub"] == "pract-billing"
    posted = http.post("/ehr/chart/alpha", data={"user": "pract-nurse"})
    assert posted.status_code == 303
    assert "sandbox_user=pract-nurse" in posted.headers["set-cookie"]


def test_default_user_is_the_care_manager(base: str) -> None:
    with httpx.Client(base_url=base) as fresh:
        assert re.search(r'value="pract-care-manager" selected', fresh.get("/ehr/chart/beta").text)


def test_other_chart_views(http: httpx.Client) -> None:
    problems = http.get("/ehr/chart/alpha?view=problems").text
    assert "Heart failure" in problems and "<iframe" not in problems
    assert http.get("/ehr/chart/alpha?view=summary").status_code == 200
    assert http.get("/ehr/chart/alpha?view=medications").status_code == 200


def test_unknown_patient_is_404(http: httpx.Client) -> None:
    assert http.get("/ehr/chart/nobody").status_code == 404


def test_chart_without_app_url_shows_a_notice(keys, jwks_url) -> None:
    from tests.sandbox.conftest import sandbox_server

    with sandbox_server(keys, jwks_url, app_launch_url="") as base:
        page = httpx.get(f"{base}/ehr/chart/alpha")
        assert page.status_code == 200
        assert "<iframe" not in page.text and "No app launch URL" in page.text
