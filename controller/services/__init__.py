"""The controller's gRPC services, one module per service in controller.proto.

    enrollment     EnrollmentService      (enrollment port, no client identity)
    admin          AdminService           admin
    cases          CaseService            admin, engineer
    engineer       EngineerService        engineer (RunOperation in _operations)
    records        RecordsService         admin, engineer, auditor
    agent_report   AgentReportService     agent (consent decisions in _decisions)
    renewal        RenewalService         agent, engineer (certificate renewal)
    locks          AdminService's locks and AgentReportService.FetchLocks

Services raise :mod:`controller.errors` exceptions; the interceptor in
:mod:`controller.authz` checks roles before and translates errors after.
"""

from __future__ import annotations

import grpc

from controller.services._common import Deps
from controller.services.admin import AdminService
from controller.services.agent_report import AgentReportService
from controller.services.cases import CaseService
from controller.services.engineer import EngineerService
from controller.services.enrollment import EnrollmentService
from controller.services.records import RecordsService
from controller.services.renewal import RenewalService
from rmaint.v1 import controller_pb2, controller_pb2_grpc

_SERVICES = controller_pb2.DESCRIPTOR.services_by_name


def register_api(server: grpc.aio.Server, deps: Deps) -> list[str]:
    """Add the mutual-TLS API's services; returns their full names."""
    controller_pb2_grpc.add_AdminServiceServicer_to_server(AdminService(deps), server)
    controller_pb2_grpc.add_CaseServiceServicer_to_server(CaseService(deps), server)
    controller_pb2_grpc.add_EngineerServiceServicer_to_server(EngineerService(deps), server)
    controller_pb2_grpc.add_RecordsServiceServicer_to_server(RecordsService(deps), server)
    controller_pb2_grpc.add_AgentReportServiceServicer_to_server(
        AgentReportService(deps), server)
    controller_pb2_grpc.add_RenewalServiceServicer_to_server(RenewalService(deps), server)
    return [_SERVICES[name].full_name for name in (
        "AdminService", "CaseService", "EngineerService", "RecordsService",
        "AgentReportService", "RenewalService")]


def register_enrollment(server: grpc.aio.Server, deps: Deps) -> list[str]:
    """Add EnrollmentService, the only service of the enrollment port."""
    controller_pb2_grpc.add_EnrollmentServiceServicer_to_server(EnrollmentService(deps), server)
    return [_SERVICES["EnrollmentService"].full_name]


__all__ = ["Deps", "register_api", "register_enrollment"]
