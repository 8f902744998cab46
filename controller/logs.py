"""Structured logs: one JSON object per line, to stderr and ``<home>/controller.log``.

Call :func:`log_event` with an event name and fields; never pass secrets, private keys,
token secrets or database passwords as fields.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any

from rmaint.logfiles import rotating_file

LOGGER_NAME = "controller"
logger = logging.getLogger(LOGGER_NAME)
_MADE = "_rmaint_json_line"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "event", **fields}``; exceptions as a text field.

    The line is made once per record and kept on it, so the file and stderr share it.
    """

    def format(self, record: logging.LogRecord) -> str:
        made: tuple[JsonFormatter, str] | None = record.__dict__.get(_MADE)
        if made is not None and made[0] is self:
            return made[1]
        text = self._line(record)
        record.__dict__[_MADE] = (self, text)
        return text

    def _line(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def log_event(event: str, level: int = logging.INFO, *, exc_info: bool = False,
              **fields: Any) -> None:
    """Log ``event`` with ``fields`` as one structured line."""
    logger.log(level, event, exc_info=exc_info, extra={"fields": fields})


class LogSinks:
    """The handlers one controller adds; :meth:`close` removes and closes them."""

    def __init__(self, path: Path, *, stderr: bool = True) -> None:
        formatter = JsonFormatter()
        self._handlers: list[logging.Handler] = [rotating_file(path)]
        if stderr:
            self._handlers.append(logging.StreamHandler(sys.stderr))
        for handler in self._handlers:
            handler.setFormatter(formatter)
            logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)

    def close(self) -> None:
        for handler in self._handlers:
            logger.removeHandler(handler)
            handler.close()
        self._handlers.clear()
