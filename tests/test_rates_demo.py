"""The demo's organization (launch/sandbox.toml) names its Medicare locality's GPCIs: the panel, the biller
page, the superbill and the consent form show locality estimates and say so; the APCM add-on fixtures bill.

Over real HTTP: the sandbox EHR and the app on loopback, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

from smart_app.billing.pricing import organization_pricing
from smart_app.launch.organizations import load_directory
from smart_app.rules.rates import EstimateBasis, monthly_cost_share
from tests.stack import Stack, biller_headers, new_browser, open_chart
from tests.test_capture_api import api, earlier_today, launch

MONTH = dt.datetime.now(ZoneInfo("America/New_York")).strftime("%Y-%m")


def demo_pricing():
    """The pricing of the shipped sandbox organization file, as the demo loads it."""
    (org,) = [o for o in load_directory() if o.id == "sandbox"]
    return organization_pricing(org)


def money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def page(stack: Stack, path: str, headers: dict, **params: str) -> str:
    with new_browser() as browser:
        response = browser.get(f"{stack.app_url}{path}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.text


def test_the_sandbox_organization_names_gpcis() -> None:
    pricing = demo_pricing()
    assert pricing.basis is EstimateBasis.LOCALITY
    assert pricing.settings.locality is not None and "not a CMS locality" in pricing.settings.locality.name
    # A locality estimate, not the national $66.13.
    assert pricing.unit("99490").amount != Decimal("66.13")


def test_panel_biller_page_and_superbill_show_locality_estimates(stack: Stack) -> None:
    pricing = demo_pricing()
    local_99490 = pricing.unit("99490").amount
    assert local_99490 is not None
    nurse, _ = launch(stack, "ccm-two-chronic", user="pr-nurse")
    date, time = earlier_today(600)
    made = api(stack, "POST", "/entries", nurse, json={
        "program": "ccm", "activity": "medication-reconciliation", "date": date, "time": time, "minutes": 22})
    assert made.status_code == 201, made.text

    biller = biller_headers(stack)
    panel = page(stack, "/panel", biller, month=MONTH)
    assert f"Estimates: {pricing.label}." in panel.replace("&#39;", "'")
    assert "locality estimate for Sandbox demo locality, not a CMS locality" in panel
    assert money(local_99490) in panel and "$66.13" not in panel

    rolled = api(stack, "POST", "/billing/rollup", biller, json={"month": MONTH})
    assert rolled.status_code == 200 and rolled.json()["errors"] == [], rolled.text
    billing = page(stack, "/billing", biller, month=MONTH)
    assert "* Locality estimate for Sandbox demo locality" in billing
    assert money(local_99490) in billing and "$66.13" not in billing

    superbill = page(stack, "/billing/superbill.html", biller, month=MONTH, draft="1")
    assert "Locality estimate for Sandbox demo locality" in superbill and money(local_99490) in superbill


def test_consent_form_shows_the_monthly_coinsurance(stack: Stack) -> None:
    share = monthly_cost_share(demo_pricing(), "ccm")
    assert share is not None and share.low == (demo_pricing().unit("99490").amount * Decimal("0.2")).quantize(
        Decimal("0.01"))
    with new_browser() as browser:
        html = open_chart(browser, stack, "ccm-no-consent", user="pr-care-manager").text
    form = re.search(r'<details class="capture-consent".*?</details>', html, re.S)
    assert form, "the page offers to record the consent"
    text = re.sub(r"\s+", " ", form.group(0))
    assert "Typical coinsurance to tell the patient: 20% of the estimate" in text
    assert f"<strong>CCM</strong>: {money(share.low)} to {money(share.high)} a month" in text
    assert "(99490 to 99490 + 99439 &times; 2)" in text
    assert "Estimates: locality estimate for Sandbox demo locality" in text


def test_apcm_addon_fixtures_bill_with_the_apcm_level(stack: Stack) -> None:
    for patient, addon in (("apcm-bhi-addon", "G0570"), ("apcm-cocm-addon", "G0568")):
        with new_browser() as browser:
            html = open_chart(browser, stack, patient, user="pr-billing-md").text
        card = re.search(r'<article class="program status-billable"[^>]*>\s*<h3[^>]*>Advanced primary care '
                         r"management.*?</article>", html, re.S)
        assert card, f"{patient}: the APCM card is billable"
        assert re.search(rf"Billable: <strong>G0556</strong>, <strong>{addon}</strong>", card.group(0)), patient
