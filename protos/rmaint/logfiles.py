"""The daemons' log files: kept to a bounded size on disk.

A log line can be caused by anyone who reaches a port (a refused call is logged), so a
file that only grows is a way to fill the disk. Each file is rotated at ``MAX_BYTES`` into
``BACKUPS`` numbered copies (``controller.log.1`` is the newest), the oldest dropped.
"""

from __future__ import annotations

import logging.handlers
from pathlib import Path

MAX_BYTES = 64 * 2**20
BACKUPS = 4


def rotating_file(path: Path) -> logging.Handler:
    """A handler writing UTF-8 lines to ``path``, rotated as the module says."""
    return logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                                encoding="utf-8")
