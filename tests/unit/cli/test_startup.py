"""What one rmctl process loads: ``rmctl --help`` no client stack, ``rmctl diag system``
the client stack and nothing of the server, the other command groups or x509; and the
garbage collector as rmctl sets it while starting. Each runs in a fresh interpreter."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import tomli_w

from controller.client._validity import read_validity
from controller.client.config import load_config
from controller.client.engineer import SessionState, SessionStore

from .conftest import Home

# Runs main() as the console script does, then lays out a diag.system result as the
# command does, and writes the exit status, stderr's last line and sys.modules to argv[1].
SCRIPT = """
import contextlib, io, json, sys
out_path, *sys.argv[1:] = sys.argv[1:]
sys.argv[0] = "rmctl"
err = io.StringIO()
from controller.cli import main
with contextlib.redirect_stderr(err):
    try:
        main()
        code = 0
    except SystemExit as exit:
        code = exit.code
if "--help" not in sys.argv:
    from controller.cli._diag_render import render_fields
    render_fields({"hostname": "web-1", "boot_time": 1700000000, "cpu_logical": 4,
                   "memory": {"total_bytes": 2**34, "percent": 40.0}, "users": []})
lines = err.getvalue().splitlines()
with open(out_path, "w") as f:
    json.dump({"code": code, "stderr": lines[-1] if lines else "", "modules": sorted(sys.modules)}, f)
"""

# Nothing a diag system run needs: the server side, other command groups, the agent,
# Rich (tables), x509 (certificate checks read the validity without it).
NOT_FOR_DIAG = (
    "sqlalchemy", "alembic", "asyncssh", "paramiko", "psutil", "rich", "tomli_w", "agent",
    "cryptography.x509", "pki.certs", "controller.store", "controller.server",
    "controller.services", "controller.gateway", "controller.relay", "controller.setup",
    "controller.audit", "controller.config", "controller.ca", "controller.client.login",
    "controller.cli.admin", "controller.cli.cases", "controller.cli.access",
    "controller.cli.sessions", "controller.cli.audit", "controller.cli.bundle",
    "controller.cli.data", "controller.cli.config", "controller.cli.lock",
    "controller.cli.logs", "controller.cli.files", "controller.cli.device",
    "controller.cli.service", "controller.cli.install",
)
NOT_FOR_HELP = ("asyncio", "grpc", "google.protobuf", "cryptography", "permissions", "pki",
                "rmaint.v1", "rmaint.envelopes", "rmaint.handlers", "controller.client",
                "controller.cli.diag", *NOT_FOR_DIAG)


def run_rmctl(tmp_path: Path, *args: str) -> dict[str, object]:
    out = tmp_path / "loaded.json"
    subprocess.run([sys.executable, "-c", SCRIPT, str(out), *args], check=True, timeout=60,
                   capture_output=True)
    loaded: dict[str, object] = json.loads(out.read_text())
    return loaded


def among(modules: object, names: tuple[str, ...]) -> set[str]:
    """The loaded modules that are ``names`` or inside them."""
    assert isinstance(modules, list)
    return {m for m in modules for n in names if m == n or m.startswith(n + ".")}


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connecting to it is refused at once."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


def test_help_loads_neither_client_nor_command_groups(tmp_path: Path) -> None:
    loaded = run_rmctl(tmp_path, "--help")
    assert loaded["code"] == 0
    assert "controller.cli.shell" in among(loaded["modules"], ("controller.cli",))
    assert among(loaded["modules"], NOT_FOR_HELP) == set()


def test_diag_system_loads_the_client_and_nothing_else(
        tmp_path: Path, home_factory: Callable[..., Home], refusing_port: int) -> None:
    home = home_factory()
    config = home.path / "rmctl.toml"
    section = tomllib.loads(config.read_text())["client"]
    section["controller"] = f"127.0.0.1:{refusing_port}"
    config.write_text(tomli_w.dumps({"client": section}))
    SessionStore(home.path).add(SessionState("S-0123456789ab", "C-1", "web-1", "G-1"))
    read_validity(load_config(home.path).cert)  # as the first connected command leaves it

    loaded = run_rmctl(tmp_path, "--home", str(home.path), "diag", "system")

    # It got as far as the call: configuration, certificate and renewal checks, the
    # session's state, a sequence number and the signature are behind it.
    assert loaded["code"] == 1
    assert loaded["stderr"] == f"error: controller at 127.0.0.1:{refusing_port} is unreachable"
    assert SessionStore(home.path).get("S-0123456789ab").next_seq == 2
    assert {"grpc", "controller.client.workflow", "controller.cli._diag_render"} \
        <= among(loaded["modules"], ("grpc", "controller"))
    assert among(loaded["modules"], NOT_FOR_DIAG) == set()


GC_SCRIPT = """
import gc, json, sys
from controller.cli import _gc
usual = gc.get_threshold()
_gc.working()  # not started: no-op
untouched = gc.get_threshold() == usual and gc.get_freeze_count() == 0
_gc.starting()
starting = gc.get_threshold()
_gc.working()
print(json.dumps({"untouched": untouched, "starting": starting, "usual": usual,
                  "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_collections_are_rare_only_while_rmctl_starts() -> None:
    done = subprocess.run([sys.executable, "-c", GC_SCRIPT], check=True, capture_output=True,
                          text=True, timeout=60)
    seen = json.loads(done.stdout)
    assert seen["untouched"]
    assert seen["starting"][0] > seen["usual"][0] and seen["starting"][1:] == seen["usual"][1:]
    assert seen["after"] == seen["usual"]
    assert seen["frozen"] > 0
