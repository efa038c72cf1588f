"""The capture forms' defaults: the program and activity this person last used for this patient, never a
program that is not counted in minutes (TCM, APCM); with no history the person chooses the activity."""

from __future__ import annotations

import html as html_lib
import json
import re

import httpx
import pytest

from smart_app.web.capture_defaults import capture_defaults
from tests.stack import Stack
from tests.test_capture_api import api, earlier_today, launch


def test_the_last_time_based_program_used_comes_first_with_its_activity() -> None:
    made = capture_defaults(("tcm", "ccm", "bhi"), {"ccm", "bhi"},
                            [("tcm", "discharge-follow-up"), ("bhi", "registry-tracking"), ("ccm", "patient-call"),
                             ("bhi", "brief-intervention")])
    assert made.program == "bhi"
    assert made.programs == ("bhi", "ccm", "tcm")
    assert made.activities == {"tcm": "discharge-follow-up", "bhi": "registry-tracking", "ccm": "patient-call"}


@pytest.mark.parametrize(("programs", "timed", "program", "order"), [
    (("tcm", "ccm"), {"ccm"}, "ccm", ("ccm", "tcm")),  # no history: the first time-based one, never TCM
    (("tcm",), set(), None, ("tcm",)),  # only TCM: the person chooses
    (("apcm", "bhi"), {"bhi"}, "bhi", ("bhi", "apcm")),
])
def test_without_history_a_time_based_program_or_none(programs: tuple[str, ...], timed: set[str],
                                                      program: str | None, order: tuple[str, ...]) -> None:
    made = capture_defaults(programs, timed, [])
    assert (made.program, made.programs) == (program, order)
    assert made.activities == {}


def _capture_form(page: str) -> tuple[list[str], dict[str, str]]:
    programs = re.search(r'<select name="program" data-program-select>(.*?)</select>', page, re.S).group(1)
    last = re.search(r'<select name="activity" data-activity-select required data-last="([^"]*)"', page).group(1)
    return re.findall(r'<option value="([a-z_]*)"', programs), json.loads(html_lib.unescape(last))


def test_the_page_offers_the_persons_last_program_and_activity(stack: Stack) -> None:
    headers, _ = launch(stack, "cocm-depression-anxiety", user="pr-bh-care-manager")
    page = httpx_page(stack, headers)
    programs, last = _capture_form(page)
    assert programs and programs[0] not in ("tcm", "apcm")
    assert "Choose the activity" in page
    date, time = earlier_today(300)
    other = next(p for p in programs if p != programs[0] and p not in ("tcm", "apcm")) if len(programs) > 1 \
        else programs[0]
    made = api(stack, "POST", "/entries", headers, json={
        "program": other, "activity": "community-resources", "date": date, "time": time, "minutes": 6})
    assert made.status_code == 201, made.text
    programs, last = _capture_form(httpx_page(stack, headers))
    assert programs[0] == other
    assert last[other] == "community-resources"


def test_the_tcm_patient_never_defaults_to_tcm(stack: Stack) -> None:
    headers, _ = launch(stack, "tcm-recent-discharge", user="pr-nurse")
    programs, _ = _capture_form(httpx_page(stack, headers))
    assert programs[0] != "tcm"


def httpx_page(stack: Stack, headers: dict) -> str:
    """The patient page's main part as the page's own script fetches it."""
    response = httpx.get(f"{stack.app_url}/patient?fragment=1", headers=headers, timeout=20)
    assert response.status_code == 200, response.text
    return response.text
