"""The running agent keeps its log's tree and signs checkpoints; ``rmagent verify-log``
checks them from the outside, read-only, and names a tampered entry."""

from __future__ import annotations

import json
import sqlite3
import stat

from typer.testing import CliRunner

from agent.cli import app
from agent.daemon import AgentHandle
from tests.integration.agent.conftest import Clients, Deployment
from tests.integration.agent.test_daemon import approve


def _verify_log(deployment: Deployment) -> tuple[int, str]:
    done = CliRunner().invoke(app, ["--home", str(deployment.home), "verify-log", "--json"])
    return done.exit_code, done.output


async def test_the_daemon_signs_checkpoints_that_verify(
        deployment: Deployment, clients: Clients, agent: AgentHandle) -> None:
    await approve(deployment, clients)
    for seq in (1, 2, 3):
        await clients.controller.Execute(deployment.operation(seq), timeout=10)
    await agent.stop()  # the last checkpoint covers every entry
    key = deployment.home / "log.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    code, output = _verify_log(deployment)
    assert code == 0, output
    report = json.loads(output)
    assert report["entries"] == 6  # three attempts, three results
    assert report["checkpoint"]["size"] == 6
    assert report["checkpoint"]["note"].startswith("web-1.agent.")

    conn = sqlite3.connect(deployment.home / "agent-log.db", isolation_level=None)
    conn.execute("DROP TRIGGER entries_append_only_update")
    conn.execute("UPDATE entries SET engineer = 'mallory' WHERE id = 3")
    code, output = _verify_log(deployment)
    assert code == 1
    assert "entry 3 (attempt) differs from its leaf" in output
