"""``rmctl agent install`` against a real SSH server on loopback that runs commands on this
host and serves SFTP: the agent is copied, installed into a fresh virtual environment,
enrolled with a real controller, and given a systemd unit."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from demo.deployment import BIN, Deployment
from tests.support.ssh_server import SshServer

USER = "installer"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[SshServer, list[str]]]:
    commands: list[str] = []

    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        command = process.command or ""
        commands.append(command)
        given = await process.stdin.read()
        proc = await asyncio.create_subprocess_shell(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate(given.encode())
        process.stdout.write(out.decode(errors="replace"))
        process.stderr.write(err.decode(errors="replace"))
        process.exit(proc.returncode or 0)

    keys = tmp_path / "keys"
    keys.mkdir()
    server = SshServer(handle, keys, USER, sftp=True).start()
    try:
        yield server, commands
    finally:
        server.stop()


def _install(server: SshServer, token: str, root: Path, *extra: str,
             home: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(BIN / "rmctl"), "--home", str(home or root / "nohome"), "agent", "install",
            "--ssh", f"{USER}@127.0.0.1", "--port", str(server.port),
            "-i", str(server.client_key_path), "--token", token,
            "--prefix", str(root / "opt"), "--agent-home", str(root / "agent-home"),
            "--unit-dir", str(root / "units"), "--python", _base_python(), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


def _base_python() -> str:
    """The interpreter under this test's virtual environment, as a host would have it."""
    return str(Path(sys.base_prefix) / "bin" / "python3")


def test_installs_enrolls_and_writes_the_unit(tmp_path: Path,
                                              host: tuple[SshServer, list[str]]) -> None:
    server, commands = host
    deployment = Deployment(tmp_path / "deployment")
    deployment.initialise()
    try:
        deployment.start_controller()
        deployment.rmctl("customer", "add", "acme", "--name", "Acme Corp",
                         "--contract-start", "2026-01-01", "--contract-end", "2030-12-31")
        token = deployment.token("agent", "add", "web-9", "--customer", "acme")
        (tmp_path / "units").mkdir()
        done = _install(server, token, tmp_path, "--host-key", server.host_key_line,
                        "--listen", "127.0.0.1:7999", "--json",
                        home=deployment.controller_home)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert (result["agent_id"], result["started"]) == ("web-9", False)
        agents = deployment.json(deployment.rmctl("agent", "list", "--json"))
        assert [a["agent_id"] for a in agents] == ["web-9"]
    finally:
        deployment.stop()
    unit = (tmp_path / "units" / "rmagent.service").read_text()
    assert f"ExecStart={tmp_path}/opt/venv/bin/rmagent --home {tmp_path}/agent-home run" in unit
    assert "\nLimitNOFILE=65536\n" in unit  # a connection flood cannot take every descriptor
    key = tmp_path / "agent-home" / "agent.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not any(token in command for command in commands)  # passed on stdin only
    removed = [c.split(" -- ")[1] for c in commands if c.startswith("rm -rf -- ")]
    assert len(removed) == 1 and "rmaint-install." in removed[0]
    assert not Path(removed[0]).exists()  # the staging directory with the package


def test_an_unknown_host_key_is_refused_before_anything_runs(
        tmp_path: Path, host: tuple[SshServer, list[str]]) -> None:
    server, commands = host
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    done = _install(server, "rmj1.not-a-real-token", tmp_path, "--known-hosts", str(empty),
                    "--package", __file__)
    assert done.returncode == 1
    shown = server.host_key.get_fingerprint("sha256")
    assert f"host key of [127.0.0.1]:{server.port} is not known (ssh-ed25519 {shown})" \
        in done.stderr
    assert commands == []


def test_a_different_host_key_is_refused(tmp_path: Path,
                                         host: tuple[SshServer, list[str]]) -> None:
    server, commands = host
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    done = _install(server, "rmj1.not-a-real-token", tmp_path,
                    "--host-key", " ".join(other.split()[:2]), "--package", __file__)
    assert done.returncode == 1
    assert "differs from the known one" in done.stderr
    assert commands == []


def test_bad_arguments_are_refused_clearly(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "rmctl"), "agent", "install", "--ssh", "nohost",
                           "--token", "x"], capture_output=True, text=True, check=False,
                          env={**os.environ, "RMAINT_HOME": str(tmp_path)})
    assert (done.returncode, done.stderr.strip()) == (
        2, "error: invalid value for '--ssh': 'nohost' is not USER@HOST "
           "(see 'rmctl agent install --help')")


def test_a_malformed_host_key_is_refused_before_the_wheel_is_built(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "rmctl"), "agent", "install", "--ssh", "root@host.invalid",
                           "--token", "x", "--host-key", "ssh-ed25519 not-base64!"],
                          capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, "RMAINT_HOME": str(tmp_path)})
    assert (done.returncode, done.stderr.strip()) == (
        1, "error: --host-key must be 'TYPE BASE64', e.g. from 'ssh-keyscan' checked out of band")
    assert "building" not in done.stdout.lower() and "wheel" not in done.stdout.lower()
