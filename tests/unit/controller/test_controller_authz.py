"""The one authorization table: complete, minimal, and deny-by-default."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from controller.authz import ANY_ROLE, NO_IDENTITY, ROLES, authorize
from pki.identity import ROLES as IDENTITY_ROLES
from pki.identity import Identity
from rmaint.v1 import controller_pb2

SERVED: tuple[FileDescriptor, ...] = (
    controller_pb2.DESCRIPTOR, health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR,
)
TD = "example.test"


def served_methods() -> set[str]:
    return {f"/{service.full_name}/{method.name}"
            for file in SERVED for service in file.services_by_name.values()
            for method in service.methods}


def test_every_served_method_has_an_entry() -> None:
    missing = served_methods() - set(ROLES)
    assert not missing, sorted(missing)


def test_every_entry_names_a_served_method_and_known_roles() -> None:
    assert set(ROLES) <= served_methods()
    known = set(IDENTITY_ROLES) | {ANY_ROLE, NO_IDENTITY}
    assert all(roles and roles <= known for roles in ROLES.values())


def test_only_enrollment_and_health_need_no_identity() -> None:
    anonymous = {m for m, roles in ROLES.items() if NO_IDENTITY in roles}
    assert anonymous == {"/rmaint.v1.EnrollmentService/Enroll", "/grpc.health.v1.Health/Check",
                         "/grpc.health.v1.Health/Watch", "/grpc.health.v1.Health/List"}


@pytest.mark.parametrize(("service", "roles"), [
    ("AdminService", {"admin"}),
    ("CaseService", {"admin", "engineer"}),
    ("EngineerService", {"engineer"}),
    ("RecordsService", {"admin", "engineer", "auditor"}),
    ("AgentReportService", {"agent"}),
])
def test_roles_per_service(service: str, roles: set[str]) -> None:
    methods = controller_pb2.DESCRIPTOR.services_by_name[service].methods
    assert methods
    for method in methods:
        assert ROLES[f"/rmaint.v1.{service}/{method.name}"] == roles


def who(role: str, name: str = "x", domain: str = TD) -> Identity:
    return Identity(domain, role, "" if role == "controller" else name)


def test_allowed_roles_pass() -> None:
    assert authorize("/rmaint.v1.AdminService/AddCustomer", who("admin"), TD) is None
    assert authorize("/grpc.health.v1.Health/Check", who("agent"), TD) is None
    assert authorize("/rmaint.v1.EnrollmentService/Enroll", None, TD) is None


@pytest.mark.parametrize(("method", "identity", "code", "message"), [
    ("/rmaint.v1.AdminService/AddCustomer", who("engineer"),
     grpc.StatusCode.PERMISSION_DENIED, "permission denied"),
    ("/rmaint.v1.AgentReportService/Heartbeat", who("controller"),
     grpc.StatusCode.PERMISSION_DENIED, "permission denied"),
    ("/rmaint.v1.Nope/Nothing", who("admin"),
     grpc.StatusCode.PERMISSION_DENIED, "permission denied"),
    ("/rmaint.v1.AdminService/AddCustomer", None,
     grpc.StatusCode.UNAUTHENTICATED, "unauthenticated"),
    ("/rmaint.v1.AdminService/AddCustomer", who("admin", domain="other.test"),
     grpc.StatusCode.UNAUTHENTICATED, "unauthenticated"),
    ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None,
     grpc.StatusCode.UNAUTHENTICATED, "unauthenticated"),
])
def test_refusals_are_uniform_outside_and_precise_inside(
        method: str, identity: Identity | None, code: grpc.StatusCode, message: str) -> None:
    refusal = authorize(method, identity, TD)
    assert refusal is not None
    assert (refusal.code, refusal.message) == (code, message)
    assert refusal.reason and refusal.reason != message


class _Aborted(Exception):
    pass


class _Context:
    """What the boundary uses of a servicer context: abort, which raises as gRPC's does."""

    def __init__(self) -> None:
        self.status: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.status = (code, details)
        raise _Aborted


@pytest.mark.parametrize(("error", "status"), [
    (NotImplementedError("Method not implemented!"),
     (grpc.StatusCode.UNIMPLEMENTED, "method not implemented")),
    (RuntimeError("boom"), (grpc.StatusCode.INTERNAL, "internal error")),
    (NotImplementedError("a defect of ours"), (grpc.StatusCode.INTERNAL, "internal error")),
])
async def test_a_method_that_raises_ends_the_call_with_its_status(
        error: Exception, status: tuple[grpc.StatusCode, str],
        caplog: pytest.LogCaptureFixture) -> None:
    from controller.authz import _abort_for

    context = _Context()
    with pytest.raises(_Aborted):
        await _abort_for(error, "/grpc.health.v1.Health/List", context)  # type: ignore[arg-type]
    assert context.status == status
    # Only a real crash is logged as one, with its traceback.
    crashed = [r for r in caplog.records if "rpc.crashed" in r.getMessage()]
    assert bool(crashed) == (status[0] == grpc.StatusCode.INTERNAL)
