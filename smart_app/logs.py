"""Log output of a serving process or worker: plain lines, or one JSON object a line (`SMART_APP_LOG_FORMAT=json`)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from smart_app.settings import Settings

# uvicorn's loggers keep their own handlers; they get the same format.
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, and the traceback where there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
                 "process": record.process}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(settings: Settings) -> None:
    """The app's own info lines on stderr, and uvicorn's, in the format the settings ask for."""
    formatter: logging.Formatter = JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    app_logger = logging.getLogger("smart_app")
    app_logger.setLevel(logging.INFO)
    if not any(getattr(h, "_smart_app", False) for h in app_logger.handlers):
        stream = logging.StreamHandler(sys.stderr)
        stream._smart_app = True  # type: ignore[attr-defined]
        app_logger.addHandler(stream)
        app_logger.propagate = False
    for handler in app_logger.handlers:
        handler.setFormatter(formatter)
    if settings.log_format == "json":
        for name in _UVICORN:
            for other in logging.getLogger(name).handlers:
                other.setFormatter(formatter)
