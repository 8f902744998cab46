"""AdminService: customers, join tokens and the directory of enrolled agents and people."""

from __future__ import annotations

import secrets

import grpc
from sqlalchemy.engine import Connection

from controller.errors import InvalidArgument, NotFound
from controller.logs import log_event
from controller.services import _common, _convert
from controller.services import locks as _locks
from controller.services._common import Deps
from controller.store import directory, tokens
from controller.store.records import Customer, JoinTokenRecord
from pki.token import JoinToken
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc

DEFAULT_TOKEN_TTL = 1800
MAX_TOKEN_TTL = 7 * 24 * 3600
TOKEN_ROLES = ("agent", "engineer", "auditor")


class AdminService(controller_pb2_grpc.AdminServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def AddCustomer(self, request: pb.AddCustomerRequest,
                          context: grpc.aio.ServicerContext) -> pb.AddCustomerResponse:
        customer = _customer(request.customer, self._deps.clock())
        await self._deps.store.write(directory.add_customer, customer)
        log_event("customer.added", customer_id=customer.customer_id)
        return pb.AddCustomerResponse(customer=_convert.customer(customer))

    async def ListCustomers(self, request: pb.ListCustomersRequest,
                            context: grpc.aio.ServicerContext) -> pb.ListCustomersResponse:
        found = await self._deps.store.read(directory.list_customers)
        return pb.ListCustomersResponse(customers=[_convert.customer(c) for c in found])

    async def CreateJoinToken(self, request: pb.CreateJoinTokenRequest,
                              context: grpc.aio.ServicerContext) -> pb.CreateJoinTokenResponse:
        role = _common.choice(request.role, "role", TOKEN_ROLES)
        subject = _common.name(request.subject, "subject")
        customer_id = _token_customer(role, request.customer_id)
        ttl = _ttl(request.ttl_seconds)
        secret = secrets.token_urlsafe(32)
        now = self._deps.clock()
        record = JoinTokenRecord(tokens.secret_hash(secret), role, subject, customer_id,
                                 now, now + ttl, None)
        await self._deps.store.write(_add_token, record)
        log_event("token.created", role=role, subject=subject, customer_id=customer_id,
                  expires_at=record.expires_at)
        token = JoinToken(self._deps.enroll_address, self._deps.authority.pin,
                          self._deps.trust_domain, secret)
        return pb.CreateJoinTokenResponse(token=token.encode(), expires_at=int(record.expires_at))

    async def ListAgents(self, request: pb.ListAgentsRequest,
                         context: grpc.aio.ServicerContext) -> pb.ListAgentsResponse:
        found = await self._deps.store.read(directory.list_agents, request.customer_id)
        return pb.ListAgentsResponse(agents=[_convert.agent(a) for a in found])

    async def ListPrincipals(self, request: pb.ListPrincipalsRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListPrincipalsResponse:
        found = await self._deps.store.read(directory.list_principals)
        return pb.ListPrincipalsResponse(principals=[_convert.principal(p) for p in found])


    async def AddLock(self, request: pb.AddLockRequest,
                      context: grpc.aio.ServicerContext) -> pb.AddLockResponse:
        by = _common.caller_as("admin").name
        return pb.AddLockResponse(lock=await _locks.add_lock(self._deps, by, request))

    async def RemoveLock(self, request: pb.RemoveLockRequest,
                         context: grpc.aio.ServicerContext) -> pb.RemoveLockResponse:
        by = _common.caller_as("admin").name
        return pb.RemoveLockResponse(
            lock=await _locks.remove_lock(self._deps, by, request.lock_id))

    async def ListLocks(self, request: pb.ListLocksRequest,
                        context: grpc.aio.ServicerContext) -> pb.ListLocksResponse:
        found = await _locks.list_locks(self._deps, request.include_inactive)
        return pb.ListLocksResponse(locks=found)


def _customer(message: pb.Customer, now: float) -> Customer:
    start = _common.date(message.contract_start, "contract_start")
    end = _common.date(message.contract_end, "contract_end")
    if end < start:
        raise InvalidArgument("contract_end is before contract_start")
    return Customer(customer_id=_common.name(message.customer_id, "customer_id"),
                    name=_common.text(message.name, "name", limit=200),
                    contract_start=start, contract_end=end, created_at=now)


def _token_customer(role: str, customer_id: str) -> str | None:
    if role == "agent":
        if not customer_id:
            raise InvalidArgument("customer_id is required for an agent token")
        return _common.name(customer_id, "customer_id")
    if customer_id:
        raise InvalidArgument(f"a {role} token names no customer")
    return None


def _ttl(seconds: int) -> int:
    if seconds == 0:
        return DEFAULT_TOKEN_TTL
    if not 0 < seconds <= MAX_TOKEN_TTL:
        raise InvalidArgument(f"ttl_seconds must be between 1 and {MAX_TOKEN_TTL}")
    return seconds


def _add_token(conn: Connection, record: JoinTokenRecord) -> None:
    if record.customer_id and directory.get_customer(conn, record.customer_id) is None:
        raise NotFound(f"unknown customer {record.customer_id}")
    tokens.add_token(conn, record)
