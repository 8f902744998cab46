"""Engineer commands: signed requests, the current session, signed and receipted operations."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from typer.testing import CliRunner

import permissions
from controller.cli import app
from controller.client.engineer import SessionStore
from pki import certs
from rmaint.envelopes import from_wire
from rmaint.v1 import controller_pb2 as pb

from .conftest import AGENT_KEY, FakeAgent, FakeChannel, Home, rpc_error

MakeHome = Callable[..., Home]
SYSTEM = {"hostname": "web-1", "uptime_seconds": 3 * 86400 + 4 * 3600 + 59,
          "memory": {"total": 16 * 2**30, "percent": 42.5}, "load_average": [0.5, 0.25, 0.125]}


@pytest.fixture
def alice(home_factory: MakeHome) -> Home:
    return home_factory()


def rmctl(runner: CliRunner, home: Home, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--home", str(home.path), *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


AGENT_PUBLIC = permissions.public_key_bytes(AGENT_KEY.public_key())


def open_session_handler(session_id: str = "S-0123456789ab",
                         agent_public_key: bytes = AGENT_PUBLIC) -> Callable[[Any], Any]:
    def handler(request: pb.OpenSessionRequest) -> pb.OpenSessionResponse:
        session = pb.Session(session_id=session_id, engineer="alice", case_id=request.case_id,
                             agent_id=request.agent_id, grant_id=request.grant_id or "G-1",
                             started_at=1_700_000_000)
        return pb.OpenSessionResponse(session=session, grant_not_after=1_900_000_000,
                                      scopes=["diag.read"], agent_public_key=agent_public_key)
    return handler


def signed_operations(channel: FakeChannel, home: Home) -> list[permissions.Operation]:
    keys = {permissions.key_id(home.key.public_key()): home.key.public_key()}
    return [permissions.Operation.from_payload(permissions.verify(
        from_wire(r.operation), permissions.OPERATION, keys))
        for r in channel.requests("RunOperation")]


def test_access_request_is_signed_by_the_home_key(runner: CliRunner, alice: Home,
                                                  channel: FakeChannel) -> None:
    def file(request: pb.RequestAccessRequest) -> pb.RequestAccessResponse:
        statement = permissions.verify_access_request(from_wire(request.request))
        return pb.RequestAccessResponse(request=pb.AccessRequest(
            request_id=statement.request_id, case_id=statement.case_id,
            agent_id=statement.agent_id, scopes=statement.scopes, status="pending"))

    channel.handlers["RequestAccess"] = file
    code, out, _ = rmctl(runner, alice, "access", "request", "--case", "C-0001", "--agent",
                         "web-1", "--scope", "diag.read", "--scope", "diag.logs", "--for", "2h",
                         "--reason", "disk full")
    assert code == 0, out
    [request] = channel.requests("RequestAccess")
    statement = permissions.verify_access_request(from_wire(request.request))
    assert statement.engineer_key_id == permissions.key_id(alice.key.public_key())
    assert (statement.engineer, statement.scopes, statement.duration_seconds, statement.reason) \
        == ("alice", ("diag.logs", "diag.read"), 7200, "disk full")
    assert f"request {statement.request_id} filed" in out


def test_unknown_scope_is_refused_before_sending(runner: CliRunner, alice: Home,
                                                 channel: FakeChannel) -> None:
    code, _, err = rmctl(runner, alice, "access", "request", "--case", "C-1", "--agent", "web-1",
                         "--scope", "root", "--for", "1h", "--reason", "r")
    assert (code, err) == (1, "error: unknown scope: root\n")
    assert channel.calls == []


@pytest.mark.parametrize("command", [("data", "apply"), ("data", "undo"), ("config", "apply"),
                                     ("config", "undo"), ("service", "apply")])
@pytest.mark.parametrize("digest", ["sha256:325a7e450c43", "325a7e45" * 8,
                                    "sha256:" + "A" * 64])
def test_a_change_is_named_by_its_whole_digest_before_anything_is_signed(
        runner: CliRunner, alice: Home, channel: FakeChannel, command: tuple[str, str],
        digest: str) -> None:
    code, _, err = rmctl(runner, alice, *command, digest)
    assert code == 2 and f"{digest!r} is not a whole change digest" in err
    assert err.count("\n") == 1 and channel.calls == []


def test_diag_without_a_session_says_how_to_open_one(runner: CliRunner, alice: Home,
                                                     channel: FakeChannel) -> None:
    code, _, err = rmctl(runner, alice, "diag", "system")
    assert code == 1
    assert err == ("error: no current session: run 'rmctl session open --case C --agent A' "
                   "first\n")
    assert channel.calls == []


def test_session_open_then_diag_signs_increasing_sequence_numbers(
        runner: CliRunner, alice: Home, channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler()
    channel.handlers["RunOperation"] = FakeAgent(SYSTEM)
    assert rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")[0] == 0
    assert SessionStore(alice.path).current_id() == "S-0123456789ab"
    code, out, _ = rmctl(runner, alice, "diag", "system")
    assert code == 0, out
    assert rmctl(runner, alice, "diag", "disks")[0] == 0
    ops = signed_operations(channel, alice)
    assert [(o.seq, o.operation) for o in ops] == [(1, "diag.system"), (2, "diag.disks")]
    assert {(o.session_id, o.grant_id, o.case_id, o.agent_id) for o in ops} == {
        ("S-0123456789ab", "G-1", "C-0001", "web-1")}
    for text in ("web-1", "3d 4h", "16.0 GiB", "42.5 %", "0.50 0.25 0.12", "event 41"):
        assert text in out
    assert "receipt sha256:" in out


def test_opening_a_second_session_says_the_first_stays_open(
        runner: CliRunner, alice: Home, channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler("S-0123456789ab")
    code, first, _ = rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    assert code == 0 and "no longer current" not in first
    channel.handlers["OpenSession"] = open_session_handler("S-ba9876543210")
    code, second, _ = rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    assert code == 0
    assert ("session S-0123456789ab is no longer current; if it is still open, "
            "'rmctl session close S-0123456789ab' ends it") in second
    assert SessionStore(alice.path).current_id() == "S-ba9876543210"


def test_diag_with_case_and_agent_opens_a_session(runner: CliRunner, alice: Home,
                                                  channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler()
    channel.handlers["RunOperation"] = FakeAgent({"processes": [
        {"pid": 1, "name": "init", "cpu_percent": 1.5, "memory_rss_bytes": 3 * 2**20}]})
    code, out, _ = rmctl(runner, alice, "diag", "processes", "--case", "C-0001", "--agent",
                         "web-1", "--by", "memory", "--limit", "5", "--interval", "0")
    assert code == 0, out
    assert len(channel.requests("OpenSession")) == 1
    [op] = signed_operations(channel, alice)
    assert op.params == {"by": "memory", "limit": 5, "interval": 0.0}
    assert "3.0 MiB" in out and "1.5 %" in out
    # The session it opened is now current and reused.
    assert rmctl(runner, alice, "diag", "system", "--case", "C-0001", "--agent", "web-1")[0] == 0
    assert len(channel.requests("OpenSession")) == 1


def test_diag_json_prints_the_agents_result_as_is(runner: CliRunner, alice: Home,
                                                  channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler()
    channel.handlers["RunOperation"] = FakeAgent(SYSTEM)
    rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    code, out, err = rmctl(runner, alice, "--json", "diag", "system")
    assert code == 0
    assert json.loads(out) == SYSTEM
    assert err.startswith("receipt sha256:") and "event 41" in err


def test_a_receipt_for_another_result_is_refused(runner: CliRunner, alice: Home,
                                                 channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler()
    channel.handlers["RunOperation"] = FakeAgent(SYSTEM, tamper="result")
    rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    code, out, err = rmctl(runner, alice, "diag", "system")
    assert code == 1 and out == ""
    assert err == "error: the agent's receipt does not match what was exchanged: result_digest\n"


def test_a_receipt_signed_by_the_enrolled_agent_key_is_accepted_and_named(
        runner: CliRunner, alice: Home, channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler()
    channel.handlers["RunOperation"] = FakeAgent(SYSTEM)
    rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    assert SessionStore(alice.path).get("S-0123456789ab").agent_public_key == AGENT_PUBLIC
    code, out, _ = rmctl(runner, alice, "diag", "system")
    assert code == 0, out
    kid = permissions.key_id(AGENT_KEY.public_key())
    assert f"signed by agent web-1 ({kid[:23]}…)" in out


def test_a_receipt_signed_by_another_key_is_refused(runner: CliRunner, alice: Home,
                                                    channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler()
    channel.handlers["RunOperation"] = FakeAgent(SYSTEM, key=certs.generate_key())
    rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    code, out, err = rmctl(runner, alice, "diag", "system")
    assert code == 1 and out == ""
    assert err == "error: the agent's receipt signature does not verify\n"


def test_a_session_state_without_an_agent_key_says_receipts_are_not_checked(
        runner: CliRunner, alice: Home, channel: FakeChannel) -> None:
    # An older controller sends no key; a state file of an older rmctl has none either.
    channel.handlers["OpenSession"] = open_session_handler(agent_public_key=b"")
    channel.handlers["RunOperation"] = FakeAgent(SYSTEM, key=certs.generate_key())
    rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    state_file = alice.path / "sessions" / "S-0123456789ab.json"
    assert "agent_public_key" not in json.loads(state_file.read_bytes())
    code, out, _ = rmctl(runner, alice, "diag", "system")
    assert code == 0, out
    assert "signature not checked: this session's local state has no agent key" in out
    assert "signed by agent" not in out


def test_an_unusable_agent_key_from_the_controller_is_refused(
        runner: CliRunner, alice: Home, channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler(agent_public_key=b"not a key")
    code, _, err = rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    assert code == 1
    assert err.startswith("error: the controller sent an unusable key for agent web-1")
    assert SessionStore(alice.path).current() is None


def test_a_denied_operation_still_uses_up_its_number(runner: CliRunner, alice: Home,
                                                     channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler()
    channel.handlers["RunOperation"] = lambda _: rpc_error(grpc.StatusCode.PERMISSION_DENIED,
                                                           "permission denied")
    rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    code, _, err = rmctl(runner, alice, "diag", "system")
    assert (code, err) == (1, "error: permission denied\n")
    channel.handlers["RunOperation"] = FakeAgent(SYSTEM)
    assert rmctl(runner, alice, "diag", "system")[0] == 0
    assert [o.seq for o in signed_operations(channel, alice)] == [1, 2]


def test_session_list_marks_the_current_one_and_close_forgets_it(
        runner: CliRunner, alice: Home, channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler()
    session = pb.Session(session_id="S-0123456789ab", engineer="alice", case_id="C-0001",
                         agent_id="web-1", grant_id="G-1", started_at=1_700_000_000)
    channel.handlers["ListSessions"] = lambda _: pb.ListSessionsResponse(sessions=[session])
    channel.handlers["CloseSession"] = lambda r: pb.CloseSessionResponse(session=pb.Session(
        session_id=r.session_id, end_reason="closed"))
    rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    code, out, _ = rmctl(runner, alice, "session", "list", "--case", "C-0001")
    assert code == 0 and "S-0123456789ab *" in out
    code, out, _ = rmctl(runner, alice, "session", "close")
    assert code == 0 and "session S-0123456789ab closed" in out
    assert [r.session_id for r in channel.requests("CloseSession")] == ["S-0123456789ab"]
    assert SessionStore(alice.path).current() is None
    code, _, err = rmctl(runner, alice, "session", "close")
    assert (code, err) == (1, "error: no current session to close: give a session id\n")


def test_session_show_lists_events_with_receipt_digests(runner: CliRunner, alice: Home,
                                                        channel: FakeChannel) -> None:
    agent = FakeAgent(SYSTEM)
    channel.handlers["OpenSession"] = open_session_handler()
    channel.handlers["RunOperation"] = agent
    rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    _, out, _ = rmctl(runner, alice, "diag", "system")
    answered = agent(channel.requests("RunOperation")[0])
    digest = permissions.digest(from_wire(answered.receipt))
    event = pb.SessionEvent(event_id=41, session_id="S-0123456789ab", seq=1, engineer="alice",
                            operation="diag.system", params_json="{}", outcome="ok",
                            started_at=1_700_000_000.5, duration_ms=12.25,
                            receipt=answered.receipt)
    channel.handlers["GetSession"] = lambda _: pb.GetSessionResponse(
        session=pb.Session(session_id="S-0123456789ab"), events=[event])
    code, shown, _ = rmctl(runner, alice, "session", "show", "S-0123456789ab")
    assert code == 0
    assert digest in shown and digest in out
    assert "diag.system" in shown and "12 ms" in shown and "ok" in shown


def test_closing_a_session_ended_elsewhere_forgets_it_here(runner: CliRunner, alice: Home,
                                                           channel: FakeChannel) -> None:
    channel.handlers["OpenSession"] = open_session_handler()
    channel.handlers["CloseSession"] = lambda _: rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION, "session S-0123456789ab already ended (revoked)")
    rmctl(runner, alice, "session", "open", "--case", "C-0001", "--agent", "web-1")
    code, _, err = rmctl(runner, alice, "session", "close")
    assert (code, err) == (1, "error: session S-0123456789ab already ended (revoked)\n")
    assert SessionStore(alice.path).current() is None


def test_half_a_target_is_a_user_error(runner: CliRunner, alice: Home,
                                       channel: FakeChannel) -> None:
    code, _, err = rmctl(runner, alice, "diag", "disks", "--case", "C-0001")
    assert (code, err) == (1, "error: give both --case and --agent to open a session\n")
    assert channel.calls == []


def test_access_longer_than_the_limit_is_said_in_days(runner: CliRunner, alice: Home,
                                                      channel: FakeChannel) -> None:
    code, _, err = rmctl(runner, alice, "access", "request", "--case", "C-1", "--agent", "web-1",
                         "--scope", "diag.read", "--for", "30d", "--reason", "r")
    assert (code, err) == (2, "error: invalid value for '--for': 30d is too long: at most 14 "
                              "days (see 'rmctl access request --help')\n")
    assert channel.calls == []


def test_an_auditor_is_told_to_log_in_again_instead_of_renewing(
        runner: CliRunner, home_factory: Callable[..., Home]) -> None:
    auditor = home_factory(role="auditor", name="ada")
    code, _, err = rmctl(runner, auditor, "renew")
    assert code == 1
    assert err == ("error: an auditor's certificate is not renewed: log in again with a new "
                   "token from an administrator ('rmctl login --token T')\n")


def test_the_administrator_is_told_until_when_the_certificate_lasts(
        runner: CliRunner, home_factory: Callable[..., Home]) -> None:
    issued = 1_900_000_000.0
    admin = home_factory(role="admin", name="admin", lifetime_hours=365 * 24, now=issued)
    code, _, err = rmctl(runner, admin, "renew")
    until = dt.datetime.fromtimestamp(issued + 365 * 86400).astimezone()
    assert code == 1
    assert err == ("error: the administrator's certificate is not renewed: 'rmctl init' issued "
                   "it for 365 days, with the controller's own; 'rmctl reissue' in the "
                   "controller's home issues both again; "
                   f"it is valid until {until.isoformat(timespec='seconds')}\n")
    assert "log in again" not in err
