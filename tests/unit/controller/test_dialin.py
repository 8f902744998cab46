"""One dial-out stream's calls (controller.dialin.Link): ids, answers, refusals, loss."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest

from controller.dialin import Link
from controller.presence import ONLINE_WINDOW, is_online
from controller.relay import OFFLINE, Outcome
from rmaint.v1 import agent_pb2
from rmaint.v1 import controller_pb2 as pb
from tests.unit.controller.dialin_frames import written

REQUEST = agent_pb2.ExecuteRequest()
RESPONSE = agent_pb2.ExecuteResponse(result_json=b'{"ok": true}')


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)




async def test_an_answer_resolves_the_call_it_names() -> None:
    link = Link("web-1", "peer")
    first = asyncio.create_task(link.call(REQUEST, 5))
    second = asyncio.create_task(link.call(REQUEST, 5))
    sent = await written(link)
    assert [f.WhichOneof("body") for f in sent] == ["execute", "execute"]
    assert len({f.call_id for f in sent}) == 2
    assert link.answer(pb.AgentFrame(call_id=sent[1].call_id, response=RESPONSE)) is None
    denied = pb.CallStatus(code=grpc.StatusCode.PERMISSION_DENIED.value[0],
                           message="permission denied")
    assert link.answer(pb.AgentFrame(call_id=sent[0].call_id, status=denied)) is None
    relayed_first, relayed_second = await first, await second
    assert relayed_second.response == RESPONSE and relayed_second.outcome == Outcome.OK
    assert (relayed_first.code, relayed_first.detail, relayed_first.outcome) == \
        (grpc.StatusCode.PERMISSION_DENIED, "permission denied", Outcome.DENIED)


async def test_an_id_that_was_not_sent_or_already_answered_is_refused() -> None:
    link = Link("web-1", "peer")
    call = asyncio.create_task(link.call(REQUEST, 5))
    (frame,) = await written(link)
    refusal = link.answer(pb.AgentFrame(call_id=frame.call_id + 1, response=RESPONSE))
    assert refusal is not None
    assert (refusal.code, refusal.message) == \
        (grpc.StatusCode.PERMISSION_DENIED.value[0], "permission denied")
    assert not call.done()
    assert link.answer(pb.AgentFrame(call_id=frame.call_id, response=RESPONSE)) is None
    assert (await call).response == RESPONSE
    again = link.answer(pb.AgentFrame(call_id=frame.call_id, response=RESPONSE))
    assert again is not None and again.message == "permission denied"


@pytest.mark.parametrize("frame", [
    pb.AgentFrame(call_id=1),
    pb.AgentFrame(call_id=1, status=pb.CallStatus(code=0, message="ok is not a failure")),
    pb.AgentFrame(call_id=1, status=pb.CallStatus(code=99, message="no such code")),
], ids=["no-answer", "status-ok", "unknown-code"])
async def test_a_malformed_answer_is_refused_and_the_call_still_waits(
        frame: pb.AgentFrame) -> None:
    link = Link("web-1", "peer")
    call = asyncio.create_task(link.call(REQUEST, 5))
    (sent,) = await written(link)
    assert sent.call_id == frame.call_id
    refusal = link.answer(frame)
    assert refusal is not None
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert refusal.message.startswith("malformed frame: ")
    assert not call.done()
    assert link.answer(pb.AgentFrame(call_id=1, response=RESPONSE)) is None
    assert (await call).response == RESPONSE


async def test_calls_in_flight_fail_unavailable_when_the_stream_closes() -> None:
    link = Link("web-1", "peer")
    calls = [asyncio.create_task(link.call(REQUEST, 5)) for _ in range(3)]
    await written(link)
    link.close()
    for relayed in await asyncio.gather(*calls):
        assert (relayed.response, relayed.code, relayed.detail) == \
            (None, grpc.StatusCode.UNAVAILABLE, OFFLINE)
    after = await link.call(REQUEST, 5)
    assert (after.code, after.detail) == (grpc.StatusCode.UNAVAILABLE, OFFLINE)
    assert await written(link) == []  # nothing is re-sent after the loss


async def test_a_call_without_an_answer_ends_at_its_deadline_and_is_cancelled() -> None:
    link = Link("web-1", "peer")
    relayed = await link.call(REQUEST, 0.01)
    assert relayed.code == grpc.StatusCode.DEADLINE_EXCEEDED
    execute, cancel = await written(link)
    assert (cancel.call_id, cancel.WhichOneof("body")) == (execute.call_id, "cancel")
    late = link.answer(pb.AgentFrame(call_id=execute.call_id, response=RESPONSE))
    assert late is not None and late.message == "permission denied"


async def test_a_call_the_engineer_abandons_is_cancelled_on_the_agent() -> None:
    link = Link("web-1", "peer")
    call = asyncio.create_task(link.call(REQUEST, 5))
    (execute,) = await written(link)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    (cancel,) = await written(link)
    assert (cancel.call_id, cancel.WhichOneof("body")) == (execute.call_id, "cancel")


async def test_an_answered_call_sends_no_cancel() -> None:
    link = Link("web-1", "peer")
    call = asyncio.create_task(link.call(REQUEST, 5))
    (execute,) = await written(link)
    assert link.answer(pb.AgentFrame(call_id=execute.call_id, response=RESPONSE)) is None
    await call
    assert await written(link) == []


def test_online_means_heard_from_within_the_window() -> None:
    assert is_online(1000.0, 1000.0 + ONLINE_WINDOW)
    assert not is_online(1000.0, 1000.0 + ONLINE_WINDOW + 0.1)
    assert not is_online(0.0, 5.0)
