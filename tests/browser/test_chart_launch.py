"""A person opens the sandbox chart in a real browser and the app launches inside its iframe."""

from __future__ import annotations

import json

from smart_app.paths import data_path
from tests.stack import Stack


def test_app_loads_inside_the_chart_with_the_patients_problems(stack: Stack, page) -> None:
    page.goto(stack.chart_url("complex-ccm-high"))
    frame = page.frame_locator("iframe")
    bundle = json.loads((data_path("fixtures") / "complex-ccm-high.json").read_text())
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    family = patient["name"][0]["family"]
    frame.get_by_role("heading", name="Active problems").wait_for(timeout=15000)
    assert family in frame.locator("body").inner_text()
    assert frame.locator(".problems li").count() >= 5
    assert "Signed in as" in frame.locator(".signed-in").inner_text()
