"""Who reads records: an engineer fetches bundles only of the cases assigned to them (an
auditor any), and an engineer whose key is locked reads nothing (real controller)."""

from __future__ import annotations

import grpc
import pytest

from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.controller.test_bundles import (  # noqa: F401  (the fixture)
    StreamingAgent,
    _run,
    world,
)
from tests.integration.controller.test_controller_flow import World


async def _fetch(stub: rpc.RecordsServiceStub, case_id: str) -> bytes:
    return b"".join([c.data async for c in stub.GetBundle(pb.GetBundleRequest(case_id=case_id))])


async def test_bundles_only_for_the_assignee_and_nothing_once_locked(
        world: tuple[World, StreamingAgent, str]) -> None:  # noqa: F811
    w, fake, session_id = world
    await _run(w, session_id, 1)
    data = b"".join(fake.parts)
    alice = rpc.RecordsServiceStub(w.d.channel(w.engineer))
    mallory = rpc.RecordsServiceStub(w.d.channel(w.d.person("engineer", "mallory")))
    assert await _fetch(alice, w.case_id) == data  # her case
    assert await _fetch(w.records(), w.case_id) == data  # an auditor's
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await _fetch(mallory, w.case_id)
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await w.admin.AddLock(pb.AddLockRequest(target=f"engineer-key:{w.engineer.key_id}",
                                            reason="key lost", force=True))
    for read in (lambda: _fetch(alice, w.case_id),
                 lambda: alice.GetCase(pb.GetCaseRequest(case_id=w.case_id)),
                 lambda: alice.GetSession(pb.GetSessionRequest(session_id=session_id))):
        with pytest.raises(grpc.aio.AioRpcError) as locked:
            await read()
        assert locked.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await w.records().GetCase(pb.GetCaseRequest(case_id=w.case_id))).case.case_id \
        == w.case_id
