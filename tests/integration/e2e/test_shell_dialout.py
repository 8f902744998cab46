"""Interactive login to an agent in pure dial-out mode: it listens nowhere, so the shell
travels over the stream the agent opens to the controller for each ticket.

The same checks as in direct mode, with the real OpenSSH client: the exit status and the
exact bytes come back and are recorded, a customer's revocation ends the shell within one
second, a key that is not the engineer's and a ticket used twice are refused alike, and a
ticket cannot be answered by another agent's stream.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controller.gateway import asciicast
from controller.gateway.reverse import SHELL_TICKET_HEADER
from demo.deployment import BIN
from rmaint.v1 import agent_pb2, controller_pb2_grpc
from tests.integration.e2e.conftest import AGENT_ID, StructuredLog
from tests.integration.e2e.test_shell import (
    SSH,
    ShellE2E,
    assert_refused,
    live_shell,
    logged_at,
    run_ssh,
    shell_grant,
    ssh_argv,
    ticket_of,
    wrapper_argv,
)
from tests.integration.e2e.test_shell import client as client  # the fixture

pytestmark = pytest.mark.skipif(not Path(SSH).exists(), reason="needs the OpenSSH client")


@pytest.fixture(scope="module")
def dialout_shell(deployment_factory: Any) -> ShellE2E:
    e2e = ShellE2E(deployment_factory(mode="dial-out").d)
    mark = e2e.d.agent_log_size()
    e2e.gateway_port = e2e.d.enable_shell(user=getpass.getuser(), idle_timeout=30.0)
    e2e.d.wait_connected(mark)
    line = e2e.d.json(e2e.d.rmctl("gateway-key", "--json"))["known_hosts"]
    e2e.known_hosts = e2e.d.root / "gateway_known_hosts"
    e2e.known_hosts.write_text(line + "\n")
    return e2e


def test_a_login_to_a_dial_out_agent_runs_and_is_recorded(dialout_shell: ShellE2E) -> None:
    e2e = dialout_shell
    granted = shell_grant(e2e)
    mark = e2e.agent_log_mark()
    argv = [str(BIN / "rmctl"), "--home", str(e2e.d.engineer_home), "ssh",
            "--gateway", f"127.0.0.1:{e2e.gateway_port}", "--known-hosts", str(e2e.known_hosts),
            "--session", granted.session_id, AGENT_ID]
    done = run_ssh(argv, b"printf 'caf\\303\\251 '; echo marker-$((6*7)); exit 5\n")
    assert b"marker-42" in done.stdout and "café".encode() in done.stdout, done
    assert done.returncode == 5, done
    events = e2e.session_log(granted.session_id).events
    assert [e.operation for e in events] == ["shell.open", "shell.recording"], events
    recorded = json.loads(events[1].params_json)
    assert (recorded["exit_status"], recorded["end_reason"]) == (5, "exited")
    assert recorded["output_matches"] is True, recorded
    cast_file = e2e.d.root / f"{granted.session_id}.cast"
    e2e.d.auditor("session", "replay", granted.session_id, "-o", str(cast_file))
    _, cast = asciicast.parse(cast_file.read_bytes())
    assert asciicast.output_bytes(cast) == done.stdout
    login = [e for e in e2e.agent_log(mark) if e["operation"] == "shell.login"]
    assert [e["outcome"] for e in login] == ["allowed"]


def test_revoking_ends_a_dial_out_shell_within_one_second(dialout_shell: ShellE2E,
                                                          client: Any) -> None:
    e2e = dialout_shell
    granted = shell_grant(e2e)
    term = client(wrapper_argv(e2e, granted.session_id))
    term.send("echo alive-$((7+7))\n")
    term.expect(b"alive-14")
    assert live_shell(e2e, granted.session_id)["grant_id"] == granted.grant_id
    mark = e2e.agent_daemon_log.mark()
    e2e.d.rmagent("revoke", granted.grant_id)
    term.wait(timeout=5)
    ended = term.ended_at - logged_at(e2e.agent_daemon_log, mark, "grant revoked")
    assert ended < 1.0, ended


def test_a_dial_out_ticket_is_single_use_and_bound_to_the_engineer_key(
        dialout_shell: ShellE2E) -> None:
    e2e = dialout_shell
    granted = shell_grant(e2e)
    argv = wrapper_argv(e2e, granted.session_id)
    log = StructuredLog(e2e.d.controller_home / "controller.log")
    assert run_ssh(argv, b"exit 0\n").returncode == 0
    mark = log.mark()
    assert_refused(run_ssh(argv, b"exit 0\n"))  # the stream for it was used up with it
    refused = log.wait_for(mark, lambda r: r.get("event") == "gateway.refused")
    assert refused is not None and refused["reason"] == "agent-refused", refused
    # A fresh ticket with a key that is not the engineer's: refused before the agent.
    argv = wrapper_argv(e2e, granted.session_id)
    other = e2e.d.root / "other-engineer.key"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    other.chmod(0o600)
    mark = log.mark()
    assert_refused(run_ssh(ssh_argv(e2e, f"{AGENT_ID}+{ticket_of(argv)}", other), b"exit 0\n"))
    assert log.wait_for(mark, lambda r: r.get("event") == "gateway.refused")["reason"] \
        == "key-not-enrolled"


@pytest.mark.parametrize(("who", "ticket", "code"), [
    ("engineer", "0" * 32, grpc.StatusCode.PERMISSION_DENIED),  # only agents open these
    ("agent", "../../etc", grpc.StatusCode.INVALID_ARGUMENT),
    ("agent", "", grpc.StatusCode.INVALID_ARGUMENT),
])
def test_a_shell_stream_needs_an_agent_and_a_well_formed_ticket(
        dialout_shell: ShellE2E, who: str, ticket: str, code: grpc.StatusCode) -> None:
    with dialout_shell.channel("controller", who) as channel:
        stub = controller_pb2_grpc.AgentReportServiceStub(channel)
        call = stub.ShellLink(iter([agent_pb2.ShellServerMessage()]),
                              metadata=((SHELL_TICKET_HEADER, ticket),), timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            list(call)
        assert refused.value.code() == code  # type: ignore[attr-defined]
