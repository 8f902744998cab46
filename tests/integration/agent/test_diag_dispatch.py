"""Through the dispatcher: what would reach the controller holds no planted secret."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.catalogue import build_catalogue
from agent.diag.policy import DiagConfig
from agent.dispatcher import Dispatcher
from agent.errors import Refused
from agent.log import OperationLog
from agent.state import StateStore
from tests.unit.agent.conftest import AGENT_ID, FakeClock, StaticTrust, World

SECRETS = ("CmdSecret-1", "EnvSecret-2", "LogSecret-3", "KeyBody-4")


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[DiagConfig, subprocess.Popen[bytes]]]:
    """A log and a process carrying secrets, and the allowlists that let them be seen."""
    log = tmp_path / "app.log"
    log.write_text("start\napi_key: LogSecret-3\n-----BEGIN\x20PRIVATE KEY-----\nKeyBody-4\n"
                   "-----END PRIVATE KEY-----\nend\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.toml").write_text("x = 1\n")
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "--token", "CmdSecret-1"],
        stdin=subprocess.PIPE, env={**os.environ, "APP_SECRET": "EnvSecret-2"})
    yield DiagConfig(log_files=(str(log),), file_roots=(str(tmp_path / "conf"),)), child
    child.communicate(timeout=5)


@pytest.fixture
def rig(tmp_path: Path,
        host: tuple[DiagConfig, subprocess.Popen[bytes]]) -> Iterator[tuple[Dispatcher, World]]:
    world = World(scopes=("diag.read", "diag.logs", "diag.files"))
    state, log = StateStore(tmp_path / "state.db"), OperationLog(tmp_path / "log.db")
    state.add_request(world.request_envelope, world.request, 950)
    state.store_grant(world.grant_envelope, world.grant, 1000)
    dispatcher = Dispatcher(agent_id=AGENT_ID, signing_key=ec.generate_private_key(ec.SECP256R1()),
                            trust=StaticTrust(world.trust), state=state, log=log,
                            catalogue=build_catalogue(host[0]), clock=FakeClock())
    yield dispatcher, world
    state.close()
    log.close()


async def test_secrets_never_reach_the_result(
        rig: tuple[Dispatcher, World], host: tuple[DiagConfig, subprocess.Popen[bytes]]) -> None:
    dispatcher, world = rig
    diag, child = host
    operations = [
        ("diag.process", {"pid": child.pid}),
        ("diag.processes", {"name": "python", "limit": 100, "interval": 0}),
        ("logs.tail", {"path": diag.log_files[0]}),
        ("logs.search", {"path": diag.log_files[0], "pattern": ".", "regex": True}),
        ("files.hash", {"path": f"{diag.file_roots[0]}/app.toml"}),
    ]
    results = {}
    for seq, (name, params) in enumerate(operations, start=1):
        done = await dispatcher.execute(world.op(seq, name, params))
        text = done.result_json.decode()
        assert not any(secret in text for secret in SECRETS), (name, text)
        results[name] = json.loads(text)
    assert results["diag.process"]["environment_keys"].count("APP_SECRET") == 1
    assert results["diag.process"]["cmdline"].endswith("--token ***")
    assert results["logs.tail"]["redactions"] == 2
    assert results["logs.search"]["match_count"] == 6
    assert results["files.hash"]["sha256"] == hashlib.sha256(b"x = 1\n").hexdigest()


async def test_a_revoked_grant_stops_diagnostics_too(rig: tuple[Dispatcher, World]) -> None:
    dispatcher, world = rig
    await dispatcher.revoke(world.revocation())
    with pytest.raises(Refused):
        await dispatcher.execute(world.op(1, "diag.memory"))
