"""Logging for people (text) and for machines (one JSON object per line).

Events are ordinary log records with an ``event`` name and fields in ``extra``::

    log.info("progress: ...", extra={"event": "progress", "fields": {"done": 10, ...}})

The text format prints the message; the JSON format prints ``{"ts", "level", "event",
"message", **fields}``. Event names: ``start``, ``progress``, ``rate``, ``stop``,
``end``, ``error``, ``notice``.

:func:`say` is the one way to tell the operator something on stderr outside the log (an
error, a warning, why a run stopped): ``liveness-audit: TEXT`` under the text format, an
event under JSON, so every stderr line of ``--log-format json`` parses (``jq`` reaches
the ``end`` event).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["LOGGER", "configure_logging", "event", "say"]

LOGGER = "liveness_audit"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        data.update(getattr(record, "fields", {}))
        return json.dumps(data, default=str)


def configure_logging(level: str, fmt: Literal["text", "json"] = "text") -> logging.Logger:
    """Send the tool's log to stderr in the chosen format; returns the logger."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    log = logging.getLogger(LOGGER)
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False
    return log


def event(name: str, **fields: Any) -> dict[str, Any]:
    """The ``extra`` of a log call carrying event ``name`` with ``fields``."""
    return {"event": name, "fields": fields}


def _json_logging() -> bool:
    """True when the tool's log is JSON on the current stderr (a command configured it)."""
    return any(
        isinstance(handler.formatter, JsonFormatter)
        and getattr(handler, "stream", None) is sys.stderr
        for handler in logging.getLogger(LOGGER).handlers
    )


def say(text: str, *, name: str = "notice", level: int = logging.WARNING, **fields: Any) -> None:
    """``liveness-audit: TEXT`` on stderr, or the event ``name`` when the log is JSON."""
    if _json_logging():
        log = logging.getLogger(LOGGER)
        extra = event(name, **fields)
        # handled whatever --log-level says: the operator must see it, as in text
        log.handle(log.makeRecord(log.name, level, __file__, 0, "%s", (text,), None, extra=extra))
        return
    sys.stderr.write(f"liveness-audit: {text}\n")
    sys.stderr.flush()
