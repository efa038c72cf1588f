"""What the security tests share: launching as a person would, calling the API, reading the database."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.orm import Session

from smart_app.crypto import hash_handle
from tests.databases import one_transaction
from tests.stack import Stack, open_chart, page_handle

CSRF_META = re.compile(r'<meta name="smart-app-csrf" content="([^"]+)"')
COOKIE = re.compile(r"__Host-smart_app_session=([^;]+)")


@dataclass(frozen=True)
class Launched:
    """One launch as the browser sees it: the page, its handle, its CSRF token and its cookie."""

    stack: Stack
    page: str
    handle: str
    csrf: str
    cookie: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.handle}"}

    @property
    def id_hash(self) -> str:
        return hash_handle(self.handle)

    def api(self, method: str, path: str, headers: dict[str, str] | None = None,
            **kwargs: object) -> httpx.Response:
        """Call /api/v1 as the page's script does (bearer handle), unless `headers` say otherwise."""
        return httpx.request(method, f"{self.stack.app_url}/api/v1{path}",
                             headers=self.bearer if headers is None else headers, timeout=20, **kwargs)


def launch(stack: Stack, patient_id: str = "ccm-two-chronic", user: str | None = "pr-nurse",
           address: str | None = None) -> Launched:
    """Open the patient's chart in the sandbox EHR and let it launch the app (from the loopback `address`, so a
    test's launches count against its own per-address limits, not those of the tests sharing the stack).

    Without an address each launch comes from a loopback address of its own: the stack runs with the production
    limits, and a cookie-less browser's launch calls /callback twice.
    """
    if address is None:
        n = next(_LAUNCH_ADDRESSES)
        address = f"127.1.{n // 250}.{n % 250 + 1}"
    with from_address(address, follow_redirects=True) as browser:
        page = open_chart(browser, stack, patient_id, user=user)
    assert page.status_code == 200, page.text
    cookie = COOKIE.search(page.headers["set-cookie"])
    csrf = CSRF_META.search(page.text)
    assert cookie and csrf, "the page sets the session cookie and carries its CSRF token"
    return Launched(stack=stack, page=page.text, handle=page_handle(page.text), csrf=csrf.group(1),
                    cookie=cookie.group(1))


@contextlib.contextmanager
def database(stack: Stack) -> Iterator[Session]:
    """One transaction on the stack's database, as an operator (or an attacker with SQL access) has."""
    with one_transaction(stack.settings.database_url) as db:
        yield db


def from_address(address: str, **options: object) -> httpx.Client:
    """An HTTP client whose requests come from `address` (any of 127.0.0.0/8 reaches loopback)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=20, **options)  # type: ignore[arg-type]


_SLOTS = itertools.count(2)
_LAUNCH_ADDRESSES = itertools.count()


def manual_entry(minutes: int = 5, activity: str = "patient-call") -> dict:
    """A manual entry's body (at most 14 minutes) in a quarter hour of its own, going back from now.

    Every call takes the next slot, so entries of one person never overlap, whatever the time of day.
    """
    assert minutes < 15
    start = dt.datetime.now(ZoneInfo("America/New_York")) - dt.timedelta(minutes=15 * next(_SLOTS))
    return {"program": "ccm", "activity": activity, "date": start.strftime("%Y-%m-%d"),
            "time": start.strftime("%H:%M"), "minutes": minutes}


def no_stack_trace(text: str) -> bool:
    """Whether a response body is free of Python internals."""
    return not any(marker in text for marker in ("Traceback", 'File "', "sqlalchemy.", "Exception:"))


def smart_app_command(stack: Stack, monkeypatch: object, capsys: object, *argv: str) -> tuple[int, str]:
    """Run `smart-app ARGV...` (its console-script entry point, in this process) on the stack's database.

    Returns the exit status and what it printed (stdout and stderr).
    """
    from smart_app.cli import main

    for name, value in (("DATABASE_URL", stack.settings.database_url), ("SECRET_KEY", stack.settings.secret_key),
                        ("DATA_DIR", str(stack.settings.data_dir)), ("BASE_URL", stack.app_url)):
        monkeypatch.setenv(f"SMART_APP_{name}", value)
    capsys.readouterr()
    status = main(list(argv))
    printed = capsys.readouterr()
    return status, printed.out + printed.err
