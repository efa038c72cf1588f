"""A small async FHIR R4 client over httpx that turns every failure into an actionable error."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import httpx

from smart_app.ehr.failures import FailureKind, classify_answer
from smart_app.errors import EhrError, SessionExpired

FHIR_JSON = "application/fhir+json"
# A patient's chart rarely needs more; the cap keeps a runaway server from looping us.
MAX_PAGES = 20
_PORTS = {"http": 80, "https": 443}


def outcome_text(body: object) -> str:
    """The diagnostics of an OperationOutcome, or '' when the body is not one."""
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        # details.text is the human sentence where servers give one (Medplum puts FHIRPath in diagnostics).
        parts = [str((i.get("details") or {}).get("text") or i.get("diagnostics") or i.get("code"))
                 for i in body.get("issue") or [] if isinstance(i, dict)]
        return "; ".join(p for p in parts if p and p != "None")
    return ""


def _seconds_phrase(seconds: float | None) -> str:
    whole = max(round(seconds or 0), 1)
    return f"{whole} second{'s' if whole != 1 else ''}" if whole < 120 else f"{round(whole / 60)} minutes"


class FhirClient:
    """Reads a FHIR server as one user of one session."""

    def __init__(self, http: httpx.AsyncClient, base: str, access_token: str | None) -> None:
        self.http = http
        self.base = base.rstrip("/") + "/"
        self.headers = {"Accept": FHIR_JSON}
        if access_token:
            self.headers["Authorization"] = f"Bearer {access_token}"

    async def _request(self, method: str, url: str, what: str, *,
                       params: dict[str, str] | tuple[tuple[str, str], ...] | None = None, json: dict | None = None,
                       headers: dict[str, str] | None = None) -> dict:
        try:
            target = urljoin(self.base, url) if url else self.base.rstrip("/")
            response = await self.http.request(method, target, params=params, json=json,
                                               headers=headers or self.headers)
        except httpx.TimeoutException as exc:
            raise EhrError(f"The EHR did not answer in time while reading {what}.",
                           "Reload the page in a minute.") from exc
        except httpx.HTTPError as exc:
            raise EhrError(f"The EHR could not be reached while reading {what} "
                           f"({type(exc).__name__}).", "Reload the page in a minute.") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if status >= 400:
            failure = classify_answer(status, response.headers.get("Retry-After"))
            if failure.kind is FailureKind.UNAUTHORIZED:
                raise SessionExpired("The EHR no longer accepts this session's authorization.",
                                     "Relaunch the app from the patient's chart.")
            if status == 403:
                raise EhrError(f"The EHR refused access to {what}: {outcome_text(body) or 'forbidden'}.",
                               "Ask the EHR administrator to grant the app the scopes listed in "
                               "docs/install.md.")
            wait = failure.retry_after
            if failure.throttled:
                hint = f"Reload the page in {_seconds_phrase(wait)}." if wait else "Reload the page in a minute."
                raise EhrError(f"The EHR asked the app to slow down (HTTP {status}) while reading "
                               f"{what}.", hint, http_status=status, retry_after=wait)
            hint = ("Reload the page in a minute." if failure.temporary
                    else "Tell the EHR administrator; the app's request was refused.")
            raise EhrError(f"The EHR answered HTTP {status} for {what}"
                           f"{': ' + outcome_text(body) if outcome_text(body) else ''}.", hint,
                           http_status=status)
        if not isinstance(body, dict) or "resourceType" not in body:
            raise EhrError(f"The EHR answered with something that is not FHIR JSON for {what}.",
                           "Tell the EHR administrator.")
        return body

    async def read(self, resource_type: str, resource_id: str) -> dict:
        """Read one resource by type and id."""
        return await self._request("GET", f"{resource_type}/{resource_id}",
                                   f"{resource_type}/{resource_id}")

    async def search(self, resource_type: str, params: dict[str, str] | list[tuple[str, str]]) -> list[dict]:
        """Search and follow `next` links; return the matched resources."""
        what = f"the patient's {resource_type} records"
        body = await self._request("GET", resource_type, what,
                                   params=tuple(params) if isinstance(params, list) else params)
        return await self.collect(body, resource_type)

    async def first_page(self, resource_type: str, params: dict[str, str]) -> dict:
        """The first searchset Bundle of a search, its `next` link not followed."""
        body = await self._request("GET", resource_type, f"the {resource_type} records", params=params)
        if body.get("resourceType") != "Bundle":
            raise EhrError(f"The EHR answered a {resource_type} search without a Bundle.",
                           "Tell the EHR administrator.")
        return body

    async def create(self, resource_type: str, resource: dict,
                     if_none_exist: str | None = None) -> tuple[int, dict]:
        """POST a new resource, conditionally when `if_none_exist` (e.g. `identifier=system|value`) is given.

        Returns the HTTP status (201 created; 200 when a conditional create found it already there) and the
        stored resource; a server that answers without a body yields `{"resourceType", "id"}` read from its
        Location header. Unlike `_request`, refusals keep the status: the EhrError raised carries
        `http_status` (None when the EHR was not reached or timed out) and `outcome` (the OperationOutcome's
        text); 401 raises SessionExpired as everywhere else.
        """
        what = f"a new {resource_type}"
        extra = {"If-None-Exist": if_none_exist} if if_none_exist else {}
        status, body, headers = await self.write("POST", resource_type, resource, what, extra)
        if isinstance(body, dict) and body.get("resourceType") == resource_type:
            return status, body
        location = headers.get("Location") or headers.get("Content-Location") or ""
        parts = location.split("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == resource_type and parts[-1]:
            return status, {"resourceType": resource_type, "id": parts[-1]}
        raise EhrError(f"The EHR accepted {what} but did not say where it is stored.",
                       "Tell the EHR administrator.", http_status=status)

    async def write(self, method: str, path: str, body: dict, what: str,
                    extra_headers: dict[str, str] | None = None) -> tuple[int, object, httpx.Headers]:
        """Send a resource or Bundle; (status, parsed body or None, headers). Refusals keep their status.

        EhrError carries `http_status` (None when the EHR was not reached or timed out) and `outcome`;
        401 raises SessionExpired as everywhere else.
        """
        headers = {**self.headers, "Content-Type": FHIR_JSON, "Prefer": "return=representation",
                   **(extra_headers or {})}
        url = urljoin(self.base, path) if path else self.base.rstrip("/")
        try:
            response = await self.http.request(method, url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            raise EhrError(f"The EHR did not answer in time while writing {what}." if timeout else
                           f"The EHR could not be reached while writing {what} ({type(exc).__name__}).",
                           "The app keeps the record and will try again.") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        status = response.status_code
        if status >= 400:
            failure = classify_answer(status, response.headers.get("Retry-After"))
            if failure.kind is FailureKind.UNAUTHORIZED:
                raise SessionExpired("The EHR no longer accepts the app's authorization.",
                                     "Relaunch the app from the chart (or re-authorize the month-end job).")
            text = outcome_text(answer)
            wait = failure.retry_after
            if failure.throttled:
                later = f"after {_seconds_phrase(wait)}" if wait else "later"
                raise EhrError(f"The EHR asked the app to slow down (HTTP {status}) when writing {what}.",
                               f"The app keeps the record and tries again {later}.", http_status=status,
                               outcome=text, retry_after=wait)
            hint = ("The app keeps the record and will try again." if failure.temporary
                    else "Tell the EHR administrator; the app's write was refused.")
            raise EhrError(f"The EHR answered HTTP {status} when writing {what}{': ' + text if text else ''}.",
                           hint, http_status=status, outcome=text)
        return status, answer, response.headers

    async def batch(self, urls: list[str]) -> list[dict]:
        """Send GETs as one batch Bundle; return each entry's `response`+`resource`, in order."""
        bundle = {"resourceType": "Bundle", "type": "batch",
                  "entry": [{"request": {"method": "GET", "url": url}} for url in urls]}
        body = await self._request("POST", "", "the patient's records (batch)", json=bundle,
                                   headers={**self.headers, "Content-Type": FHIR_JSON})
        entries = body.get("entry") if body.get("resourceType") == "Bundle" else None
        if not isinstance(entries, list) or len(entries) != len(urls):
            raise EhrError("The EHR answered a batch with a malformed or incomplete Bundle.",
                           "Tell the EHR administrator; reload the page to try again.")
        return [e if isinstance(e, dict) else {} for e in entries]

    def _refuse_foreign(self, url: str, resource_type: str) -> None:
        """A `next` link must stay on the FHIR base's origin: the bearer token goes wherever it points."""
        target, base = urlsplit(urljoin(self.base, url)), urlsplit(self.base)
        if (target.scheme, target.hostname, target.port or _PORTS.get(target.scheme)) != \
                (base.scheme, base.hostname, base.port or _PORTS.get(base.scheme)):
            raise EhrError(f"The EHR's answer for the patient's {resource_type} records points its next page at "
                           f"another server ({target.scheme}://{target.netloc}); the app did not follow it.",
                           "Tell the EHR administrator: paging links must stay on the FHIR server "
                           f"({base.scheme}://{base.netloc}); reload the page once it is fixed.")

    async def collect(self, body: dict, resource_type: str) -> list[dict]:
        """The matched resources of a searchset Bundle, following its `next` links."""
        what = f"the patient's {resource_type} records"
        resources: list[dict] = []
        for _ in range(MAX_PAGES):
            if body.get("resourceType") != "Bundle":
                raise EhrError(f"The EHR answered a {resource_type} search without a Bundle.",
                               "Tell the EHR administrator.")
            for entry in body.get("entry") or []:
                mode = (entry.get("search") or {}).get("mode", "match")
                resource = entry.get("resource")
                if mode == "match" and isinstance(resource, dict):
                    resources.append(resource)
            next_url = next((link.get("url") for link in body.get("link") or []
                             if link.get("relation") == "next"), None)
            if not next_url:
                return resources
            self._refuse_foreign(next_url, resource_type)
            body = await self._request("GET", next_url, what)
        raise EhrError(f"The EHR returned more than {MAX_PAGES} pages of {resource_type}.",
                       "Tell the EHR administrator; the app stopped reading to stay responsive.")
