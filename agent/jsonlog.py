"""The daemon's diagnostic log: one JSON object per line, to stderr and a file.

Structured fields travel in ``extra={"fields": {...}}``. Never pass secrets or keys.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any

from rmaint.logfiles import rotating_file


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k not in line})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def install(path: Path, *, level: int = logging.INFO) -> list[logging.Handler]:
    """Send the ``agent`` loggers to stderr and ``path``; return the handlers to remove."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr),
                                       rotating_file(path)]
    logger = logging.getLogger("agent")
    for handler in handlers:
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    return handlers


def uninstall(handlers: list[logging.Handler]) -> None:
    logger = logging.getLogger("agent")
    for handler in handlers:
        logger.removeHandler(handler)
        handler.close()
