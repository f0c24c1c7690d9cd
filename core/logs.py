"""How obslink logs: one line per event, UTC times; as text for a terminal, or as one JSON
object per line for a service whose journal or collector parses it (``--log-format json``)."""

from __future__ import annotations

import json
import logging
import sys
import time

from obslink.readings import format_utc

LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message"}`` (and ``exception`` when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": format_utc(int(record.created * 1_000_000)),
                 "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level`` (debug, info, warning, error) in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)


def current_format() -> str:
    """The format the root logger writes in (a child process logs the same way)."""
    json_handlers = [h for h in logging.getLogger().handlers
                     if isinstance(h.formatter, JsonFormatter)]
    return "json" if json_handlers else "text"
