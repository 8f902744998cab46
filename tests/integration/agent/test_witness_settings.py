"""The daemon witnesses as often as ``[witness] interval_seconds`` says, and ``rmagent sync``
reports a controller it cannot reach as a failed sync, without a witnessing round that could
only fail the same way."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from typer.testing import CliRunner

from agent import config as agent_config
from agent.cli import app
from agent.witness_config import WitnessConfig
from tests.integration.agent.conftest import Deployment, StartAgent


async def test_the_daemon_takes_its_witnessing_interval_from_agent_toml(
        deployment: Deployment, start_agent: StartAgent) -> None:
    config = agent_config.load(deployment.home)
    agent_config.save(deployment.home, dataclasses.replace(
        config, witness=WitnessConfig(interval_seconds=45)))
    handle = await start_agent()
    # Private by design (only the daemon sets it); read here to prove the wiring.
    witness = handle.sync._witness
    assert witness is not None and witness._interval == 45.0


async def test_rmagent_sync_reports_an_unreachable_controller(
        deployment: Deployment, start_agent: StartAgent,
        caplog: pytest.LogCaptureFixture) -> None:
    await start_agent()  # its controller address is a closed port
    home = str(deployment.home)
    config = agent_config.load(deployment.home)
    done = await asyncio.to_thread(CliRunner().invoke, app, ["--home", home, "sync", "--json"])
    assert done.exit_code == 1, done.output
    report = json.loads(done.stdout)
    assert report["sync_error"] == f"controller {config.controller} is unreachable"
    assert report["witness_error"] == "not tried: the sync failed"
    assert report["witness"] is None

    people = await asyncio.to_thread(CliRunner().invoke, app, ["--home", home, "sync"])
    assert people.exit_code == 1
    # One line, no gRPC internals: the witnessing round was not tried.
    assert people.stderr == (f"error: sync with the controller failed: controller "
                             f"{config.controller} is unreachable\n")
    # The agent's log keeps what gRPC said, to tell a closed port from a refused handshake.
    logged = [r.fields for r in caplog.records  # type: ignore[attr-defined]
              if r.getMessage() == "controller sync failed"]
    assert logged and logged[-1]["grpc"].startswith("UNAVAILABLE: ")
