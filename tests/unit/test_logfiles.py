"""The daemons' log files stay within a bounded size on disk."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rmaint import logfiles


def test_a_log_file_is_rotated_and_the_oldest_copies_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfiles, "MAX_BYTES", 1000)
    handler = logfiles.rotating_file(tmp_path / "controller.log")
    logger = logging.getLogger("test.logfiles")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for n in range(500):  # about 40 KB in all
            logger.warning("line %04d %s", n, "x" * 60)
    finally:
        logger.removeHandler(handler)
        handler.close()
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == ["controller.log", *(f"controller.log.{n}" for n in
                                        range(1, logfiles.BACKUPS + 1))]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    assert "line 0499" in (tmp_path / "controller.log").read_text()  # the newest lines kept
