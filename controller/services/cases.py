"""CaseService: opening and closing support cases (admin, or the engineer it is for)."""

from __future__ import annotations

import grpc
from sqlalchemy.engine import Connection

from controller.authz import Caller, current_caller
from controller.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from controller.logs import log_event
from controller.services import _common, _convert
from controller.services._common import Deps
from controller.store import cases, directory, sessions
from controller.store.records import Case
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc

OPEN, CLOSED = "open", "closed"


class CaseService(controller_pb2_grpc.CaseServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def OpenCase(self, request: pb.OpenCaseRequest,
                       context: grpc.aio.ServicerContext) -> pb.OpenCaseResponse:
        caller = current_caller()
        customer_id = _common.name(request.customer_id, "customer_id")
        title = _common.text(request.title, "title", limit=200)
        assignee = assignee_for(caller, request.assignee.strip())
        # An engineer's own certificate proves they are one; whom an administrator names
        # must be known here.
        check = caller.role != "engineer"
        case = await self._deps.store.write(
            _open, customer_id, title, assignee, str(caller), self._deps.clock(), check)
        log_event("case.opened", case_id=case.case_id, customer_id=customer_id,
                  assignee=assignee, by=str(caller))
        return pb.OpenCaseResponse(case=_convert.case(case))

    async def CloseCase(self, request: pb.CloseCaseRequest,
                        context: grpc.aio.ServicerContext) -> pb.CloseCaseResponse:
        caller = current_caller()
        case_id = _common.text(request.case_id, "case_id", limit=64)
        resolution = _common.text(request.resolution, "resolution", required=False)
        case, closed = await self._deps.store.write(
            _close, caller, case_id, resolution, self._deps.clock())
        log_event("case.closed", case_id=case_id, by=str(caller), sessions_closed=closed)
        return pb.CloseCaseResponse(case=_convert.case(case))


def assignee_for(caller: Caller, requested: str) -> str:
    """Whom a new case is assigned to: an engineer only ever to themselves."""
    if caller.role == "engineer":
        if requested and requested != caller.name:
            raise PermissionDenied(f"engineer {caller.name} tried to open a case for {requested}")
        return caller.name
    if not requested:
        raise InvalidArgument("assignee is required: name the engineer the case is for")
    return _common.name(requested, "assignee")


def _open(conn: Connection, customer_id: str, title: str, assignee: str, by: str,
          now: float, check_assignee: bool) -> Case:
    if directory.get_customer(conn, customer_id) is None:
        raise NotFound(f"unknown customer {customer_id}")
    if check_assignee and not directory.engineer_known(conn, assignee):
        raise NotFound(f"unknown engineer {assignee} (add them with 'rmctl engineer add "
                       f"{assignee}')")
    case = Case(case_id=cases.next_case_id(conn), customer_id=customer_id, title=title,
                status=OPEN, assignee=assignee, opened_by=by, opened_at=now, closed_at=None,
                resolution="")
    cases.add_case(conn, case)
    return case


def _close(conn: Connection, caller: Caller, case_id: str, resolution: str,
           now: float) -> tuple[Case, int]:
    case = cases.get_case(conn, case_id)
    if case is None:
        raise NotFound(f"unknown case {case_id}")
    if caller.role == "engineer" and case.assignee != caller.name:
        raise PermissionDenied(f"engineer {caller.name} tried to close {case_id} "
                               f"assigned to {case.assignee}")
    if not cases.close_case(conn, case_id, resolution, now):
        raise FailedPrecondition(f"case {case_id} is already closed")
    closed = sessions.close_open_sessions(conn, case_id=case_id, reason="case-closed", now=now)
    updated = cases.get_case(conn, case_id)
    assert updated is not None
    return updated, closed
