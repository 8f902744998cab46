"""logs.tail and logs.search on real files and journalctl: allowlisted, redacted, bounded."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent.catalogue import OperationSpec, build_catalogue
from agent.diag import logsearch
from agent.diag.policy import DiagConfig
from agent.errors import InvalidParams

AWS = "AKIAIOSFODNN7EXAMPLE"
SECRETS = ("hunter2", AWS, "tok-3xyz", "MIIEsecretkeybody", "c2VjcmV0IGtleQ", "jsonpw")
Catalogue = Callable[..., dict[str, OperationSpec]]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """100 ordinary lines, then secrets of every kind and a private key block."""
    lines = [f"2024-05-01T10:00:{i:02d} app[42]: request {i} ok user=u{i}" for i in range(100)]
    lines += [
        "2024-05-01T10:01:00 app[42]: db login password=hunter2 failed",
        f"2024-05-01T10:01:01 app[42]: using key {AWS}",
        '2024-05-01T10:01:02 app[42]: config {"user": "app", "password": "jsonpw"}',
        "2024-05-01T10:01:03 app[42]: -----BEGIN\x20RSA PRIVATE KEY-----",
        "MIIEsecretkeybody",
        "c2VjcmV0IGtleQ",
        "-----END RSA PRIVATE KEY-----",
        "2024-05-01T10:01:04 app[42]: GET /api Authorization: Bearer tok-3xyz",
        "2024-05-01T10:01:05 app[42]: ERROR disk full",
    ]
    path = tmp_path / "app.log"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def catalogue(tmp_path: Path, log: Path) -> Catalogue:
    def make(**changes: Any) -> dict[str, OperationSpec]:
        diag = DiagConfig(log_files=(str(log),), journald_units=("rmaint-test.service",))
        return build_catalogue(dataclasses.replace(diag, **changes))
    return make


async def run(catalogue: dict[str, OperationSpec], name: str,
              params: dict[str, Any]) -> dict[str, Any]:
    result = await catalogue[name].prepare(params)()
    text = json.dumps(result, ensure_ascii=False, allow_nan=False)
    assert not any(secret in text for secret in SECRETS), text
    return result


async def test_tail_returns_the_last_lines_redacted(catalogue: Catalogue, log: Path) -> None:
    result = await run(catalogue(), "logs.tail", {"path": str(log), "lines": 12})
    raw = log.read_text().splitlines()[-12:]
    assert result["line_count"] == 12 and len(result["lines"]) == 12
    assert result["lines"][:3] == raw[:3]  # ordinary lines pass unchanged
    assert result["lines"][3] == "2024-05-01T10:01:00 app[42]: db login password=*** failed"
    assert result["lines"][5].endswith('{"user": "app", "password": "***"}')
    assert result["lines"][7:10] == ["***", "***", "-----END RSA PRIVATE KEY-----"]
    assert result["lines"][-1] == raw[-1]
    assert result["redactions"] == 6
    assert result["size_bytes"] == log.stat().st_size


async def test_a_key_block_begun_before_the_lines_shown_stays_hidden(catalogue: Catalogue,
                                                                       log: Path) -> None:
    result = await run(catalogue(), "logs.tail", {"path": str(log), "lines": 4})
    assert result["lines"][:2] == ["***", "-----END RSA PRIVATE KEY-----"]
    assert result["redactions"] == 2


async def test_tail_of_short_empty_and_unterminated_files(catalogue: Catalogue,
                                                          log: Path) -> None:
    log.write_text("one\ntwo")
    assert (await run(catalogue(), "logs.tail", {"path": str(log)}))["lines"] == ["one", "two"]
    log.write_text("")
    assert (await run(catalogue(), "logs.tail", {"path": str(log)}))["lines"] == []


async def test_long_lines_are_cut_and_control_characters_escaped(catalogue: Catalogue,
                                                                 log: Path) -> None:
    log.write_bytes(b"x" * 100_000 + b" password=hunter2\n\x1b[2Jclear\tscreen\n\xff\n")
    result = await run(catalogue(), "logs.tail", {"path": str(log)})
    assert result["lines"] == ["x" * 2048, "^[[2Jclear\tscreen", "\ufffd"]
    assert result["lines_cut"] == 1


async def test_tail_refuses_what_is_not_an_allowlisted_regular_file(
        catalogue: Catalogue, log: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidParams, match="log_files"):
        await run(catalogue(), "logs.tail", {"path": str(tmp_path / "other.log")})
    link, fifo, missing = tmp_path / "link.log", tmp_path / "fifo.log", tmp_path / "gone.log"
    link.symlink_to("/etc/passwd")
    os.mkfifo(fifo)
    ops = catalogue(log_files=(str(link), str(fifo), str(missing)))
    for path, code in ((link, "symlink"), (fifo, "special-file"), (missing, "not-found")):
        result = await asyncio.wait_for(run(ops, "logs.tail", {"path": str(path)}), 5)
        assert result["error"] == code
        assert "lines" not in result


async def test_search_fixed_string_regex_and_case(catalogue: Catalogue, log: Path) -> None:
    data = log.read_bytes()
    result = await run(catalogue(), "logs.search", {"path": str(log), "pattern": "request 9"})
    assert result["match_count"] == 11 and result["complete"]  # 9 and 90..99
    assert [m["line"].split()[-2] for m in result["matches"]][:2] == ["ok", "ok"]
    for match in result["matches"]:
        assert data[match["offset_bytes"]:].startswith(match["line"].encode())
    regex = await run(catalogue(), "logs.search", {
        "path": str(log), "pattern": r"request [0-9]+ ok user=u(1|2)$", "regex": True,
        "limit": 1})
    assert regex["match_count"] == 2 and [m["line"][-7:] for m in regex["matches"]] == \
        ["user=u2"]  # the most recent match
    assert regex["scanned_lines"] == len(data.splitlines())
    upper = await run(catalogue(), "logs.search", {"path": str(log), "pattern": "error DISK",
                                                   "ignore_case": True})
    assert [m["line"][-15:] for m in upper["matches"]] == ["ERROR disk full"]


async def test_search_matches_redacted_lines_only(catalogue: Catalogue, log: Path) -> None:
    """A search cannot probe a secret: matching sees what the engineer would see."""
    for pattern in ("hunter2", "hunter", AWS[:8], "MIIE", "tok-3"):
        search = catalogue()["logs.search"].prepare({"path": str(log), "pattern": pattern})
        result = await search()  # the result echoes the pattern: only the matches count
        assert result["match_count"] == 0 and result["matches"] == [], pattern
    shown = await run(catalogue(), "logs.search", {"path": str(log), "pattern": "password=***"})
    assert shown["match_count"] == 1 and shown["redactions"] == 1
    block = await run(catalogue(), "logs.search", {"path": str(log), "pattern": "^[A-Za-z0-9]+$",
                                                   "regex": True})
    assert block["match_count"] == 0


async def test_search_scans_the_end_of_a_big_file(catalogue: Catalogue, log: Path) -> None:
    with log.open("w") as f:
        f.write("needle early\n" + ("filler line\n" * 200_000) + "needle late\n")
    result = await run(catalogue(), "logs.search", {"path": str(log), "pattern": "needle",
                                                    "scan_bytes": 1 << 20})
    assert [m["line"] for m in result["matches"]] == ["needle late"]
    assert result["matches"][0]["offset_bytes"] == log.stat().st_size - len("needle late\n")


async def test_a_slow_pattern_is_stopped_by_the_time_budget(catalogue: Catalogue,
                                                            log: Path) -> None:
    """Allowed features can still be slow (polynomial backtracking): the child is killed."""
    log.write_text("a" * 2000 + "\n")
    query = logsearch.parse_search({"path": str(log), "pattern": "a*a*a*a*a*a*a*a*b",
                                    "regex": True}, DiagConfig(log_files=(str(log),)))
    started = time.monotonic()
    result = await logsearch.search(dataclasses.replace(query, budget=0.5))
    assert time.monotonic() - started < 3
    assert result["complete"] is False and result["matches"] == []


async def test_journald_units_are_allowlisted_too(catalogue: Catalogue) -> None:
    with pytest.raises(InvalidParams, match="journald_units"):
        await run(catalogue(), "logs.tail", {"unit": "sshd.service"})
    tail = await run(catalogue(), "logs.tail", {"unit": "rmaint-test.service", "lines": 5})
    found = await run(catalogue(), "logs.search", {"unit": "rmaint-test.service",
                                                   "pattern": "x"})
    if shutil.which("journalctl") is None:
        assert tail["available"] is False and found["available"] is False
        return
    assert tail["available"] is True and isinstance(tail["lines"], list)
    assert found["complete"] is True and found["matches"] == []


async def test_cancelling_a_search_kills_its_child(catalogue: Catalogue, log: Path) -> None:
    """A revoke (or the deadline) cancels the operation: no search may run on after it."""
    log.write_text("a" * 2000 + "\n")
    search = catalogue()["logs.search"].prepare({"path": str(log), "regex": True,
                                                 "pattern": "a*a*a*a*a*a*a*a*b"})
    task = asyncio.ensure_future(search())

    def searching() -> list[psutil.Process]:
        return [c for c in psutil.Process().children() if "_grep" in " ".join(c.cmdline())]

    while not searching():
        await asyncio.sleep(0.02)
    [child] = searching()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not child.is_running()
