"""Interactive login through the SSH gateway, with the real OpenSSH client.

One deployment for the module with the gateway on and a ``[shell]`` table (user: the
account the tests run as, idle timeout 3 s). Each test opens its own case, grant and
session. The client is ``/usr/bin/ssh`` with BatchMode, the gateway's pinned host key
and the engineer's identity key; a refused login must look the same whatever the reason
("permission denied" on stderr, exit status 1), with the reason in the logs.
"""

from __future__ import annotations

import getpass
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import permissions as p
from controller.gateway import asciicast
from demo.deployment import BIN
from tests.integration.e2e.conftest import (
    AGENT_ID,
    E2E,
    Granted,
    StructuredLog,
    new_id,
    one_error_line,
)

SSH = "/usr/bin/ssh"
IDLE = 3.0
REFUSED = b"permission denied"
pytestmark = pytest.mark.skipif(not Path(SSH).exists(), reason="needs the OpenSSH client")


class ShellE2E(E2E):
    """A deployment with the gateway on: its port and a known_hosts file pinning its key."""

    gateway_port: int
    known_hosts: Path


@pytest.fixture(scope="module")
def shell_deployment(deployment_factory: Any) -> ShellE2E:
    e2e = ShellE2E(deployment_factory().d)
    e2e.gateway_port = e2e.d.enable_shell(user=getpass.getuser(), idle_timeout=IDLE)
    line = e2e.d.json(e2e.d.rmctl("gateway-key", "--json"))["known_hosts"]
    e2e.known_hosts = e2e.d.root / "gateway_known_hosts"
    e2e.known_hosts.write_text(line + "\n")
    return e2e


def ssh_argv(e2e: ShellE2E, username: str, key: Path | None = None) -> list[str]:
    return [SSH, "-tt", "-p", str(e2e.gateway_port), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={e2e.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-i", str(key or e2e.d.engineer_home / "identity.key"), "-l", username,
            "127.0.0.1"]


def wrapper_argv(e2e: ShellE2E, session_id: str) -> list[str]:
    """``rmctl ssh --print``: the ssh command the wrapper would run, with a fresh ticket."""
    done = e2e.d.engineer("ssh", "--gateway", f"127.0.0.1:{e2e.gateway_port}",
                          "--known-hosts", str(e2e.known_hosts), "--session", session_id,
                          "--print", "--json")
    return [str(a) for a in json.loads(done.stdout)]


def ticket_of(argv: list[str]) -> str:
    return argv[argv.index("-l") + 1].partition("+")[2]


def shell_grant(e2e: E2E, **options: Any) -> Granted:
    return e2e.grant_session(scopes=options.pop("scopes", ("shell",)), **options)


def run_ssh(argv: list[str], script: bytes, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, input=script, capture_output=True, timeout=timeout, check=False)


def assert_refused(done: subprocess.CompletedProcess[bytes]) -> None:
    """The one refusal every reason gets: exit 1, "permission denied", no shell output."""
    assert done.returncode == 1, done
    assert done.stderr.strip().splitlines()[0] == REFUSED, done.stderr
    assert done.stdout == b"", done.stdout


def login_refusal(e2e: E2E, mark: int) -> dict[str, Any]:
    """The agent's record of the refused login after ``mark`` in its operation log."""
    entries = [e for e in e2e.agent_log(mark) if e["operation"] == "shell.login"]
    assert len(entries) == 1, entries
    assert entries[0]["outcome"] == "denied", entries
    return entries[0]


class Client:
    """ssh on a pseudo-terminal of its own, as an engineer's terminal runs it."""

    def __init__(self, argv: list[str], cols: int = 80, rows: int = 24) -> None:
        from agent.shell.pty import set_window

        self.master, slave = os.openpty()
        set_window(slave, cols, rows)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.seen = bytearray()
        self.ended_at = 0.0
        self._done = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if data:
                    self.seen += data
                    continue
            if self.proc.poll() is not None:
                self.ended_at = time.time()
                self._done.set()
                return

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, marker: bytes, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            assert time.monotonic() < deadline, (marker, bytes(self.seen[-400:]))
            time.sleep(0.02)

    def resize(self, cols: int, rows: int) -> None:
        from agent.shell.pty import set_window

        set_window(self.master, cols, rows)
        os.kill(self.proc.pid, signal.SIGWINCH)

    def wait(self, timeout: float = 20.0) -> int:
        assert self._done.wait(timeout), bytes(self.seen[-400:])
        return int(self.proc.returncode)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._done.wait(2)
        os.close(self.master)


@pytest.fixture
def client() -> Iterator[Any]:
    made: list[Client] = []

    def make(argv: list[str], cols: int = 80, rows: int = 24) -> Client:
        made.append(Client(argv, cols, rows))
        return made[-1]
    yield make
    for c in made:
        c.close()


def live_shell(e2e: E2E, session_id: str) -> dict[str, Any]:
    shells = e2e.d.json(e2e.d.rmagent("sessions", "--json"))
    found = [s for s in shells if s["session_id"] == session_id]
    assert len(found) == 1, shells
    return dict(found[0])


def logged_at(log: StructuredLog, mark: int, message: str) -> float:
    line = log.wait_for(mark, lambda r: r.get("msg") == message, timeout=15.0)
    assert line is not None, message
    return datetime.fromisoformat(line["ts"]).timestamp()


# -- a login that works --------------------------------------------------------------------


def test_rmctl_ssh_runs_a_command_and_its_exit_status_comes_back(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    mark = e2e.agent_log_mark()
    argv = [str(BIN / "rmctl"), "--home", str(e2e.d.engineer_home), "ssh",
            "--gateway", f"127.0.0.1:{e2e.gateway_port}", "--known-hosts", str(e2e.known_hosts),
            "--session", granted.session_id, AGENT_ID]
    done = run_ssh(argv, b"echo marker-$((6*7)); exit 7\n")
    assert b"marker-42" in done.stdout, done
    assert done.returncode == 7, done
    events = e2e.session_log(granted.session_id).events
    assert [e.operation for e in events] == ["shell.open", "shell.recording"], events
    recorded = json.loads(events[1].params_json)
    assert recorded["exit_status"] == 7 and recorded["end_reason"] == "exited"
    assert recorded["output_matches"] is True, recorded
    # The agent's own log: the login before the shell started, its end after.
    entries = e2e.agent_log(mark)
    login = [e for e in entries if e["operation"] == "shell.login"]
    assert [(e["outcome"], e["session_id"]) for e in login] == [("allowed", granted.session_id)]
    ended = [e for e in entries if e["kind"] == "result" and e["attempt_id"] == login[0]["id"]]
    assert [(e["outcome"], e["detail"]) for e in ended] == [("ok", "exited, exit status 7")]
    assert ended[0]["result_digest"] == "sha256:" + recorded["output_sha256"]


def test_output_past_the_recording_s_limit_ends_the_shell_and_keeps_the_recording(
        shell_deployment: ShellE2E) -> None:
    # A zero byte takes 6 bytes as stored ("\u0000"): 12 MB of them pass the 64 MiB.
    e2e = shell_deployment
    granted = shell_grant(e2e)
    done = run_ssh(wrapper_argv(e2e, granted.session_id),
                   b"head -c 12000000 /dev/zero; echo after-$((2+2))\n", timeout=60)
    assert done.returncode == 255 and b"after-4" not in done.stdout
    assert b"the session's recording reached its limit of 64 MiB" in done.stdout
    events = e2e.session_log(granted.session_id).events
    recorded = json.loads(events[-1].params_json)
    assert (events[-1].operation, recorded["end_reason"]) == ("shell.recording",
                                                             "recording-limit")
    cast_file = e2e.d.root / f"{granted.session_id}.cast"
    e2e.d.auditor("session", "replay", granted.session_id, "-o", str(cast_file))
    assert cast_file.stat().st_size <= asciicast.MAX_RECORDING
    _, replayed = asciicast.parse(cast_file.read_bytes())
    shown = asciicast.output_bytes(replayed)
    assert done.stdout.startswith(shown)  # all the engineer saw, up to the limit's note


def test_one_address_holds_only_so_many_connections(shell_deployment: ShellE2E) -> None:
    # Connections that never log in each hold a file descriptor until the login timeout:
    # one address gets a few, so it cannot take every other engineer's room.
    from controller.gateway.server import MAX_PER_PEER

    e2e = shell_deployment
    granted = shell_grant(e2e)
    held = [socket.create_connection(("127.0.0.1", e2e.gateway_port))
            for _ in range(MAX_PER_PEER)]
    try:
        for sock in held:
            sock.settimeout(10)
            assert sock.recv(64).startswith(b"SSH-2.0-")  # admitted: the server speaks
        extra = socket.create_connection(("127.0.0.1", e2e.gateway_port))
        extra.settimeout(10)
        assert extra.recv(64) == b""  # closed at once
        extra.close()
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10  # the gateway sees them go; a login works again
    while run_ssh(wrapper_argv(e2e, granted.session_id), b"exit 0\n").returncode != 0:
        assert time.monotonic() < deadline, "the closed connections still count"
        time.sleep(0.2)


def test_the_recording_replays_the_exact_bytes(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    script = b"printf 'caf\\303\\251 \\377\\376 split\\342'; printf '\\202\\254\\n'; exit 0\n"
    done = run_ssh(wrapper_argv(e2e, granted.session_id), script)
    assert done.returncode == 0, done
    assert "café".encode() in done.stdout and b"\xff\xfe" in done.stdout
    cast_file = e2e.d.root / f"{granted.session_id}.cast"
    e2e.d.auditor("session", "replay", granted.session_id, "-o", str(cast_file))  # over RPC
    again = e2e.d.auditor("session", "replay", granted.session_id, "-o", str(cast_file),
                          check=False)
    assert (again.returncode, again.stderr) == (
        1, f"error: {cast_file} exists: pass --force to replace it\n")
    e2e.d.auditor("session", "replay", granted.session_id, "-o", str(cast_file), "--force")
    header, events = asciicast.parse(cast_file.read_bytes())
    assert asciicast.output_bytes(events) == done.stdout
    assert header.width == 80 and header.height == 24
    for pace in (["--no-wait"], ["--speed", "20"]):
        played = subprocess.run([str(BIN / "rmctl"), "--home", str(e2e.d.auditor_home),
                                 "session", "replay", granted.session_id, *pace],
                                capture_output=True, timeout=30, check=True)
        assert played.stdout == done.stdout, pace


def test_a_window_resize_reaches_the_shell(shell_deployment: ShellE2E, client: Any) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    term = client(wrapper_argv(e2e, granted.session_id), cols=100, rows=30)
    term.send("stty size; echo sized-$((1+1))\n")
    term.expect(b"sized-2")
    assert b"30 100" in term.seen
    term.resize(132, 43)
    time.sleep(0.3)  # the window-change message travels ahead of the next keystrokes
    term.send("stty size; echo resized-$((2+1))\n")
    term.expect(b"resized-3")
    assert b"43 132" in term.seen
    term.send("exit 0\n")
    assert term.wait() == 0
    cast = e2e.d.rmctl("session", "replay", granted.session_id, "--no-wait")
    assert "resized-3" in cast.stdout


def test_an_idle_shell_is_ended(shell_deployment: ShellE2E, client: Any) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    term = client(wrapper_argv(e2e, granted.session_id))
    term.send("echo idle-$((3+4))\n")
    term.expect(b"idle-7")
    started = time.monotonic()
    term.wait(timeout=IDLE + 10)
    assert IDLE - 0.5 <= time.monotonic() - started <= IDLE + 3
    events = e2e.session_log(granted.session_id).events
    assert json.loads(events[-1].params_json)["end_reason"] == "idle-timeout"


def test_a_shell_ends_when_its_grant_does(shell_deployment: ShellE2E, client: Any) -> None:
    e2e = shell_deployment
    request = e2e.pending_request(e2e.open_case(), ("shell",))
    grant = p.approve(request, e2e.approver_key(), grant_id=new_id("G-"),
                      now=int(time.time()), duration_seconds=6)
    grant_id = e2e.offer_grant(grant).grant_id
    session = e2e.d.json(e2e.d.engineer("session", "open", "--case", request.case_id,
                                        "--agent", AGENT_ID, "--grant", grant_id, "--json"))
    term = client(wrapper_argv(e2e, str(session["session_id"])))
    for i in range(40):  # keep it busy: idleness must not be what ends it
        term.send(f"echo busy-{i}\n")
        if term.proc.poll() is not None:
            break
        time.sleep(0.25)
    term.wait(timeout=5)
    events = e2e.session_log(str(session["session_id"])).events
    assert json.loads(events[-1].params_json)["end_reason"] == "grant-expired"


# -- the customer stays in control ---------------------------------------------------------


def test_rmagent_kill_ends_a_live_shell_within_one_second(shell_deployment: ShellE2E,
                                                         client: Any) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    term = client(wrapper_argv(e2e, granted.session_id))
    term.send("echo alive-$((5+5))\n")
    term.expect(b"alive-10")
    shell = live_shell(e2e, granted.session_id)
    assert (shell["engineer"], shell["grant_id"]) == ("alice", granted.grant_id)
    assert shell["shell_id"] in e2e.d.rmagent("sessions").stdout  # the customer's table
    mark = e2e.agent_daemon_log.mark()
    e2e.d.rmagent("kill", shell["shell_id"])
    term.wait(timeout=5)
    ended = term.ended_at - logged_at(e2e.agent_daemon_log, mark,
                                      "shell killed by the customer")
    assert ended < 1.0, ended
    assert e2e.d.json(e2e.d.rmagent("sessions", "--json")) == []
    gone = e2e.d.rmagent("kill", shell["shell_id"], check=False)
    assert one_error_line(gone).startswith("no live shell")


def test_revoking_the_grant_ends_a_live_shell_within_one_second(shell_deployment: ShellE2E,
                                                                client: Any) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    term = client(wrapper_argv(e2e, granted.session_id))
    term.send("echo alive-$((6+6))\n")
    term.expect(b"alive-12")
    mark = e2e.agent_daemon_log.mark()
    e2e.d.rmagent("revoke", granted.grant_id)
    term.wait(timeout=5)
    ended = term.ended_at - logged_at(e2e.agent_daemon_log, mark, "grant revoked")
    assert ended < 1.0, ended
    assert json.loads(e2e.session_log(granted.session_id).events[-1].params_json)[
        "end_reason"] == "revoked"


def test_rmagent_watch_shows_the_live_output(shell_deployment: ShellE2E, client: Any) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    term = client(wrapper_argv(e2e, granted.session_id))
    term.send("echo ready-$((4+4))\n")
    term.expect(b"ready-8")
    shell = live_shell(e2e, granted.session_id)
    mark = e2e.agent_daemon_log.mark()
    watcher = subprocess.Popen([str(BIN / "rmagent"), "--home", str(e2e.d.agent_home),
                                "watch", shell["shell_id"]], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        # Output before the watcher attached is not replayed to it: wait until it has.
        logged_at(e2e.agent_daemon_log, mark, "shell watched by the customer")
        term.send("echo watched-$((9*9))\n")
        term.expect(b"watched-81")
        term.send("exit 0\n")
        assert term.wait() == 0
        out, err = watcher.communicate(timeout=10)
    finally:
        watcher.kill()
    assert b"watched-81" in out
    assert b"ended (exited)" in err


# -- refusals: one message outward, the reason inward --------------------------------------


def test_a_ticket_is_single_use(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    argv = wrapper_argv(e2e, granted.session_id)
    assert run_ssh(argv, b"exit 0\n").returncode == 0
    mark = e2e.agent_log_mark()
    assert_refused(run_ssh(argv, b"exit 0\n"))
    assert login_refusal(e2e, mark)["reason"] == "ticket-unknown"


def test_an_unknown_ticket_is_refused(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    mark = e2e.agent_log_mark()
    assert_refused(run_ssh(ssh_argv(e2e, f"{AGENT_ID}+{'0' * 32}"), b"exit 0\n"))
    assert login_refusal(e2e, mark)["reason"] == "ticket-unknown"


def test_an_expired_ticket_is_refused(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    envelope = e2e.session_operation(granted, "shell.open", params={"ttl": 1})
    ticket = json.loads(e2e.run_through_controller(envelope).result_json)["ticket"]
    time.sleep(1.2)  # the ticket's own lifetime, on the agent's real clock
    mark = e2e.agent_log_mark()
    assert_refused(run_ssh(ssh_argv(e2e, f"{AGENT_ID}+{ticket}"), b"exit 0\n"))
    assert login_refusal(e2e, mark)["reason"] == "ticket-expired"


def test_a_grant_without_shell_cannot_make_a_ticket(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e, scopes=("diag.read",))
    done = e2e.d.engineer("ssh", "--gateway", f"127.0.0.1:{e2e.gateway_port}",
                          "--known-hosts", str(e2e.known_hosts), "--session",
                          granted.session_id, "--print", check=False)
    assert done.returncode == 1, done
    assert done.stderr.strip() == "error: permission denied", done
    last = [e for e in e2e.agent_log() if e["operation"] == "shell.open"][-1]
    assert (last["outcome"], last["reason"]) == ("denied", "scope-not-granted"), last


def test_a_ticket_under_an_expired_grant_is_refused(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    request = e2e.pending_request(e2e.open_case(), ("shell",))
    grant = p.approve(request, e2e.approver_key(), grant_id=new_id("G-"),
                      now=int(time.time()), duration_seconds=3)
    grant_id = e2e.offer_grant(grant).grant_id
    session = e2e.d.json(e2e.d.engineer("session", "open", "--case", request.case_id,
                                        "--agent", AGENT_ID, "--grant", grant_id, "--json"))
    argv = wrapper_argv(e2e, str(session["session_id"]))
    deadline = time.monotonic() + 6
    while e2e.agent_grants()[grant_id] != "expired":
        assert time.monotonic() < deadline, "the grant never expired"
        time.sleep(0.1)
    mark = e2e.agent_log_mark()
    assert_refused(run_ssh(argv, b"exit 0\n"))
    assert login_refusal(e2e, mark)["reason"] == "grant-expired"


def test_a_key_that_is_not_the_engineers_is_refused(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    argv = wrapper_argv(e2e, granted.session_id)
    stranger = e2e.d.root / f"stranger-{new_id('')}.key"
    stranger.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    stranger.chmod(0o600)
    log = StructuredLog(e2e.d.controller_home / "controller.log")
    mark = log.mark()
    assert_refused(run_ssh(ssh_argv(e2e, argv[argv.index("-l") + 1], stranger), b"exit 0\n"))
    refused = log.wait_for(mark, lambda r: r.get("event") == "gateway.refused"
                           or r.get("msg") == "gateway.refused")
    assert refused is not None and refused["reason"] == "key-not-enrolled", refused
    # The ticket was never shown to the agent: the engineer's own key still uses it.
    assert run_ssh(argv, b"exit 0\n").returncode == 0


def test_malformed_shell_messages_are_invalid_and_the_agent_serves_on(
        shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    with e2e.channel("agent", "controller") as channel:
        shell = channel.stream_stream("/rmaint.v1.AgentService/Shell")
        with pytest.raises(grpc.RpcError) as garbage:
            list(shell(iter([b"\xff\xff\xff\xff"]), timeout=30))
    assert (garbage.value.code(), garbage.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "malformed request: not a valid protobuf message")
    assert run_ssh(wrapper_argv(e2e, granted.session_id), b"exit 0\n").returncode == 0


def test_a_command_instead_of_a_login_is_refused_and_the_ticket_kept(
        shell_deployment: ShellE2E, tmp_path: Path) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    argv = wrapper_argv(e2e, granted.session_id)
    marker = tmp_path / "exec-ran"
    done = run_ssh([*argv, f"touch {marker}"], b"")
    assert done.returncode == 1 and b"interactive login only" in done.stderr, done
    assert not marker.exists()
    assert run_ssh(argv, b"exit 0\n").returncode == 0  # the ticket was not spent


def test_a_dropped_client_ends_the_shell_on_the_agent(shell_deployment: ShellE2E,
                                                      client: Any) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    term = client(wrapper_argv(e2e, granted.session_id))
    term.send("echo alive-$((6+6))\n")
    term.expect(b"alive-12")
    live_shell(e2e, granted.session_id)
    term.send("sleep 300\n")  # busy: an end of input alone would not end it
    time.sleep(0.5)
    term.proc.kill()  # no exit: the connection just goes
    deadline = time.monotonic() + 10
    while e2e.d.json(e2e.d.rmagent("sessions", "--json")):
        assert time.monotonic() < deadline, "the shell outlived its client"
        time.sleep(0.2)
