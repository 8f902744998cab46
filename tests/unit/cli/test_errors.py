"""The one table from gRPC statuses to client errors, seen from the library and the CLI."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.client import errors
from controller.client.api import ControllerClient
from controller.client.errors import Call, translate
from rmaint.v1 import controller_pb2 as pb

from .conftest import FakeChannel, Home, rpc_error

ADDRESS = "127.0.0.1:7443"


@pytest.mark.parametrize(("code", "details", "method", "kind", "message"), [
    ("UNAVAILABLE", "failed to connect to all addresses", "ListCases", errors.Unreachable,
     "controller at 127.0.0.1:7443 is unreachable"),
    ("UNAVAILABLE", "agent web-1 is unreachable", "RunOperation", errors.Unreachable,
     "agent web-1 is unreachable"),
    ("UNAVAILABLE", "operation refused: the agent cannot record it", "RunOperation",
     errors.Unreachable, "operation refused: the agent cannot record it"),
    ("UNAVAILABLE", "the controller's database is unavailable", "ListCases",
     errors.Unreachable, "the controller's database is unavailable"),
    ("UNAVAILABLE", "Socket closed", "RunOperation", errors.Unreachable,
     "controller at 127.0.0.1:7443 is unreachable"),
    ("DEADLINE_EXCEEDED", "agent web-1 did not answer in time", "RunOperation",
     errors.TimedOut, "agent web-1 did not answer in time"),
    ("ABORTED", "a concurrent change collided; retry", "OpenCase", errors.ServerError,
     "a concurrent change collided; retry"),
    ("PERMISSION_DENIED", "permission denied", "ListCases", errors.PermissionDenied,
     "permission denied"),
    # Not "by the agent": the controller refuses some operations itself (locks).
    ("PERMISSION_DENIED", "permission denied", "RunOperation", errors.PermissionDenied,
     "permission denied"),
    ("UNAUTHENTICATED", "unauthenticated", "ListCases", errors.Unauthenticated,
     "unauthenticated: the controller did not accept this identity (ask for a new token "
     "and run 'rmctl login --token T')"),
    ("DEADLINE_EXCEEDED", "", "ListCases", errors.TimedOut,
     "controller at 127.0.0.1:7443 did not answer in time"),
    ("DEADLINE_EXCEEDED", "", "RunOperation", errors.TimedOut,
     "the operation did not finish in time"),
    ("INVALID_ARGUMENT", "limit must be 1..100", "RunOperation", errors.InvalidArgument,
     "limit must be 1..100"),
    ("NOT_FOUND", "no case C-0009", "GetCase", errors.NotFound, "no case C-0009"),
    ("ALREADY_EXISTS", "customer acme exists", "AddCustomer", errors.AlreadyExists,
     "customer acme exists"),
    ("FAILED_PRECONDITION", "outside the service contract: the service company may only advise",
     "RequestAccess", errors.Refused,
     "outside the service contract: the service company may only advise"),
    ("FAILED_PRECONDITION", "", "OpenSession", errors.Refused, "refused by the controller"),
    ("UNIMPLEMENTED", "", "ConsentLog", errors.ServerError,
     "the controller at 127.0.0.1:7443 does not offer ConsentLog (is it an older version?)"),
    ("INTERNAL", "internal error", "ListCases", errors.ServerError,
     "internal error in the controller (see its log)"),
    ("DATA_LOSS", "", "ListCases", errors.ServerError, "controller error DATA_LOSS"),
])
def test_table(code: str, details: str, method: str, kind: type[errors.RpcError],
               message: str) -> None:
    error = translate(Call(code, details, method, ADDRESS))
    assert type(error) is kind
    assert str(error) == message
    assert (error.code, error.method, error.details) == (code, method, details)


def test_every_status_code_has_a_message() -> None:
    for status in grpc.StatusCode:
        if status is grpc.StatusCode.OK:
            continue
        error = translate(Call(status.name, "", "ListCases", ADDRESS))
        assert isinstance(error, errors.ClientError) and str(error)


def test_every_table_key_is_a_grpc_status() -> None:
    assert set(errors.TABLE) <= {status.name for status in grpc.StatusCode}


async def test_the_client_translates_rpc_errors_with_its_address(channel: FakeChannel) -> None:
    channel.handlers["ListCases"] = lambda _: rpc_error(grpc.StatusCode.PERMISSION_DENIED,
                                                       "permission denied")
    client = ControllerClient(channel, address="10.0.0.1:7443")
    with pytest.raises(errors.PermissionDenied, match=r"^permission denied$") as caught:
        await client.list_cases()
    assert isinstance(caught.value.__cause__, grpc.aio.AioRpcError)


@pytest.mark.parametrize(("code", "details", "args", "line"), [
    (grpc.StatusCode.PERMISSION_DENIED, "permission denied", ["case", "list"],
     "error: permission denied"),
    (grpc.StatusCode.UNAVAILABLE, "failed to connect", ["case", "list"],
     "error: controller at 127.0.0.1:7443 is unreachable"),
    (grpc.StatusCode.NOT_FOUND, "no case C-0404", ["case", "show", "C-0404"],
     "error: no case C-0404"),
])
def test_the_cli_prints_one_line_and_exits_1(
        runner: CliRunner, channel: FakeChannel, home_factory: Callable[..., Home],
        code: grpc.StatusCode, details: str, args: list[str], line: str) -> None:
    home = home_factory()
    for method in ("ListCases", "GetCase"):
        channel.handlers[method] = lambda _: rpc_error(code, details)
    result = runner.invoke(app, ["--home", str(home.path), *args])
    assert result.exit_code == 1
    assert result.stderr == line + "\n"
    assert result.stdout == ""


def test_unexpected_errors_are_one_line_too(runner: CliRunner, channel: FakeChannel,
                                            home_factory: Callable[..., Home]) -> None:
    home = home_factory()

    def broken(_: pb.ListCasesRequest) -> pb.ListCasesResponse:
        raise RuntimeError("the fake broke")

    channel.handlers["ListCases"] = broken
    result = runner.invoke(app, ["--home", str(home.path), "case", "list"])
    assert result.exit_code == 1
    assert result.stderr == "error: the fake broke\n"


def test_ctrl_c_exits_130(runner: CliRunner, channel: FakeChannel,
                          home_factory: Callable[..., Home]) -> None:
    home = home_factory()

    def interrupted(_: pb.ListCasesRequest) -> pb.ListCasesResponse:
        raise KeyboardInterrupt

    channel.handlers["ListCases"] = interrupted
    result = runner.invoke(app, ["--home", str(home.path), "case", "list"])
    assert result.exit_code == 130
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("code", "status", "line"), [
    # Exit 1 means an integrity failure: a check that could not be made is incomplete (2),
    # an identity that may not audit is a usage error (3).
    (grpc.StatusCode.UNAVAILABLE, 2,
     "error: controller at 127.0.0.1:7443 is unreachable (not checked)"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 2, None),
    (grpc.StatusCode.INTERNAL, 2, None),
    (grpc.StatusCode.PERMISSION_DENIED, 3, "error: permission denied"),
    (grpc.StatusCode.UNAUTHENTICATED, 3, None),
])
def test_an_audit_that_cannot_ask_the_controller_never_exits_1(
        runner: CliRunner, channel: FakeChannel, home_factory: Callable[..., Home],
        code: grpc.StatusCode, status: int, line: str | None) -> None:
    home = home_factory(role="auditor", name="ada")
    for method in ("GetLogKey", "Reconcile"):
        channel.handlers[method] = lambda _: rpc_error(code, "")
    for args in (["audit", "verify", "--case", "C-0001"], ["audit", "reconcile", "--agent", "web-1"]):
        result = runner.invoke(app, ["--home", str(home.path), *args])
        assert result.exit_code == status, result.output
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
        if line is not None:
            assert result.stderr == line + "\n"


def test_the_audit_groups_own_usage_errors_exit_3(runner: CliRunner) -> None:
    result = runner.invoke(app, ["audit", "--bogus", "verify"])
    assert (result.exit_code, result.stderr) == (
        3, "error: no such option: --bogus (see 'rmctl audit --help')\n")
    # An event index no log can reach is the caller's mistake, not an incomplete check (2).
    result = runner.invoke(app, ["audit", "prove", str(2**64), "-o", "proof.json"])
    assert result.exit_code == 3 and "is not in the range" in result.stderr
    # No command at all: the help, and the group's usage status (another group's is 2).
    bare = runner.invoke(app, ["audit"])
    assert bare.exit_code == 3 and "verify-bundle" in bare.output
    assert runner.invoke(app, ["case"]).exit_code == 2
