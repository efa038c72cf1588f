"""Log lines carry ids, never secrets: the query strings of `/launch` (and `/launch/<org>`) and `/callback` are cut
from the access log.

`/callback?code=...&state=...` carries a one-time authorization code and the launch's state; `/launch?launch=...`
the EHR's launch token. uvicorn's access log writes the whole request line, so `serve` and `demo` install this
filter on the `uvicorn.access` logger before serving.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"
REDACTED_PATHS = frozenset({"/launch", "/callback"})
REDACTED = "[query redacted]"


class RedactLaunchQueries(logging.Filter):
    """Replace the query string of a `/launch` or `/callback` request line in uvicorn's access log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def redact(path_with_query: str) -> str:
    """`/callback?code=x&state=y` -> `/callback?[query redacted]`; any other text as it is."""
    path, mark, _ = path_with_query.partition("?")
    launched = path in REDACTED_PATHS or path.startswith("/launch/")  # an organization's own launch URL
    return f"{path}?{REDACTED}" if mark and launched else path_with_query


def install_log_redaction() -> None:
    """Attach the filter to uvicorn's access logger (once; uvicorn's logging set-up keeps logger filters)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactLaunchQueries) for f in logger.filters):
        logger.addFilter(RedactLaunchQueries())
