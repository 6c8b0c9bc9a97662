"""Logging set-up shared by the command-line entry points: one line per event on stderr.

Owns: the log format: text (`time logger LEVEL message`) or JSON (one object per line,
keys `time`, `level`, `logger`, `message`, and `exception` when there is one, for log
shippers).
Must never: decide what is logged (the components do).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside strings are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


def configure(verbose: bool = False, log_format: str = "text") -> None:
    """Log to stderr at INFO (DEBUG when verbose) as text or JSON lines."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: expected text or json")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True
    )
