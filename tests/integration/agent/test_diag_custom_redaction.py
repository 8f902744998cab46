"""The customer's redact_patterns on real processes and logs: planted secrets never leave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.catalogue import OperationSpec, build_catalogue
from agent.diag import policy, processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

ACME = "ACME-12345678"
ENV_NAME = "ACME_87654321"
SECRETS = ("12345678", "87654321", "hunter2")
PATTERNS = [{"name": "acme", "pattern": "ACME-[0-9]{8}"}, "ACME_[0-9]{8}"]
UNNAMED = "diag.redact_patterns[1]"


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    path.write_text("".join(f"line {i} ok\n" for i in range(20))
                    + f"order {ACME} failed password=hunter2\n"
                    + f"retry {ACME} and {ACME}\n" + "done\n")
    return path


@pytest.fixture
def catalogue(log: Path) -> dict[str, OperationSpec]:
    return build_catalogue(policy.parse({"log_files": [str(log)], "redact_patterns": PATTERNS}))


@pytest.fixture
def child(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    link = tmp_path / "rmcustomchild"
    link.symlink_to(sys.executable)
    proc = subprocess.Popen(
        [str(link), "-c", "import sys; print('ready', flush=True); sys.stdin.read()",
         f"--order={ACME}", "--password", "hunter2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, ENV_NAME: "1"})
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    yield proc
    proc.communicate(timeout=5)


async def run(catalogue: dict[str, OperationSpec], name: str,
              params: dict[str, Any]) -> dict[str, Any]:
    result = await catalogue[name].prepare(params)()
    text = json.dumps(result, allow_nan=False)
    assert not any(secret in text for secret in SECRETS), text
    return result


@pytest.mark.parametrize("procfs", [True, False])
async def test_a_planted_secret_in_a_command_line_never_shows(
        catalogue: dict[str, OperationSpec], child: subprocess.Popen[str], procfs: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_PROCFS", procfs)
    result = await run(catalogue, "diag.processes", {"name": "rmcustomchild", "interval": 0})
    [row] = result["processes"]
    assert row["cmdline"].endswith(" --order=*** --password ***")
    assert result["redactions"] == 2  # the built-in --password, the custom ACME
    assert result["redactions_by_pattern"] == {"acme": 1, UNNAMED: 0}


async def test_one_process_hides_the_secret_and_the_matching_variable_name(
        catalogue: dict[str, OperationSpec], child: subprocess.Popen[str]) -> None:
    result = await run(catalogue, "diag.process", {"pid": child.pid})
    assert ENV_NAME in Path(f"/proc/{child.pid}/environ").read_text()
    assert ENV_NAME not in result["environment_keys"] and "PATH" in result["environment_keys"]
    assert result["environment_values_withheld"] == len(result["environment_keys"]) + 1
    assert result["redactions"] == 3
    assert result["redactions_by_pattern"] == {"acme": 1, UNNAMED: 1}


async def test_without_patterns_the_results_keep_their_shape(
        child: subprocess.Popen[str]) -> None:
    plain = build_catalogue(policy.parse({}))
    result = await plain["diag.processes"].prepare({"name": "rmcustomchild", "interval": 0})()
    assert "redactions_by_pattern" not in result and ACME in result["processes"][0]["cmdline"]


async def test_a_planted_secret_in_a_log_line_never_shows(
        catalogue: dict[str, OperationSpec], log: Path) -> None:
    tail = await run(catalogue, "logs.tail", {"path": str(log), "lines": 3})
    assert tail["lines"] == ["order *** failed password=***", "retry *** and ***", "done"]
    assert tail["redactions"] == 4 and tail["redactions_by_pattern"] == {"acme": 3, UNNAMED: 0}


async def test_log_search_matches_and_counts_after_the_custom_patterns(
        catalogue: dict[str, OperationSpec], log: Path) -> None:
    found = await run(catalogue, "logs.search", {"path": str(log), "pattern": "***"})
    assert [m["line"] for m in found["matches"]] == ["order *** failed password=***",
                                                     "retry *** and ***"]
    assert found["redactions"] == 4 and found["redactions_by_pattern"] == {"acme": 3, UNNAMED: 0}
    last = await run(catalogue, "logs.search", {"path": str(log), "pattern": "retry"})
    assert last["redactions_by_pattern"] == {"acme": 2, UNNAMED: 0}
    probe = await catalogue["logs.search"].prepare(
        {"path": str(log), "pattern": "ACME-1", "regex": False})()
    assert probe["match_count"] == 0  # a search cannot probe what a pattern hides
