"""The daemon's local client: one clear message per failure, from one table."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import pytest

from agent.local_client import (
    NOT_RUNNING,
    DaemonNotRunning,
    DaemonRefused,
    DaemonUnreachable,
    LocalClient,
    translate,
)

from .conftest import Invoke

COMMANDS = [["status"], ["requests"], ["grants", "--all"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_daemon_not_running(rmagent: Invoke, home: Path, command: list[str]) -> None:
    result = rmagent(*command)
    assert result.exit_code == 1
    # The hint names the home the command was given, so that it can be copied as it is.
    assert result.stderr == ("error: the agent is not running: start it with "
                             f"'rmagent --home {home} run'\n")
    assert NOT_RUNNING == "the agent is not running: start it with 'rmagent run'"


def test_stale_socket_means_not_running(rmagent: Invoke, home: Path) -> None:
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(home / "rmagent.sock"))  # bound, never listening: a crashed daemon
    result = rmagent("status")
    assert result.exit_code == 1
    assert result.stderr == f"error: the agent is not running: start it with 'rmagent --home {home} run'\n"


def test_client_raises_daemon_not_running(tmp_path: Path) -> None:
    async def call() -> None:
        async with LocalClient(tmp_path / "rmagent.sock") as client:
            await client.status()

    with pytest.raises(DaemonNotRunning, match="start it with 'rmagent run'"):
        asyncio.run(call())


class _Failure(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(("code", "details", "kind", "message"), [
    (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; Connection refused",
     DaemonNotRunning, NOT_RUNNING),
    (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; Permission denied",
     DaemonUnreachable, "permission denied"),
    (grpc.StatusCode.UNAVAILABLE, "the agent's state is unavailable", DaemonRefused,
     "the agent's state is unavailable"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "", DaemonUnreachable, "did not answer in time"),
    (grpc.StatusCode.FAILED_PRECONDITION, "request R-1 is not pending", DaemonRefused,
     "request R-1 is not pending"),
    (grpc.StatusCode.NOT_FOUND, "no grant G-1", DaemonRefused, "no grant G-1"),
    (grpc.StatusCode.UNIMPLEMENTED, "", DaemonRefused, "does not support this command"),
    (grpc.StatusCode.INTERNAL, "boom", DaemonRefused, "the agent failed: internal: boom"),
])
def test_translation_table(code: grpc.StatusCode, details: str, kind: type[Exception],
                           message: str) -> None:
    error = translate(_Failure(code, details), Path("/h/rmagent.sock"))
    assert isinstance(error, kind)
    assert message in str(error)
