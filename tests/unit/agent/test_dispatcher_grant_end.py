"""No operation outlives its grant: at the grant's not_after on the agent's clock a
running operation is cancelled as a revocation would cancel it, and a stream sends no
part after it (the grant G-1 of the rig ends at t=4600; its fake clock starts at 1100)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from agent.catalogue import Emit, OperationSpec, StreamRunner, streaming
from agent.context import OperationContext
from agent.errors import Cancelled
from tests.unit.agent.conftest import RigFactory

NOT_AFTER = 4600


async def test_a_stream_sends_nothing_after_its_grant_ends(make_rig: RigFactory) -> None:
    clock: list[Any] = []

    def prepare(params: Any, context: OperationContext) -> StreamRunner:
        async def run(emit: Emit) -> dict[str, Any]:
            await emit(b"inside the window\n")
            clock[0].now = NOT_AFTER + 3600 * 20  # the watch ran on for 20 hours
            for i in range(3):
                await emit(f"after the end {i}\n".encode())
            return {"ok": True}
        return run

    spec = streaming("test.watch", "diag.read", prepare, deadline=3600 * 24,
                     output_limit=1 << 20)
    rig = make_rig(extra={"test.watch": spec})
    clock.append(rig.clock)
    parts: list[bytes] = []

    async def send(part: bytes) -> None:
        parts.append(part)

    with pytest.raises(Cancelled, match="grant expired"):
        await rig.dispatcher.execute_stream(rig.world.op(operation="test.watch"), send)
    assert parts == [b"inside the window\n"]
    _attempt, result = rig.log.entries()
    assert (result.kind, result.outcome, result.detail) == \
        ("result", "cancelled", "grant expired while running")
    assert rig.dispatcher.in_flight() == 0


async def test_an_operation_is_cut_off_at_the_grant_end(make_rig: RigFactory) -> None:
    """Its spec allows a minute; the grant has 0.1 s left, so it ends then."""
    async def forever() -> dict[str, Any]:
        await asyncio.sleep(60)
        return {"ok": True}

    spec = OperationSpec("test.slow", "diag.read", False, 60.0, 4096, lambda _params: forever)
    rig = make_rig(extra={"test.slow": spec})
    rig.clock.now = NOT_AFTER - 0.1
    started = time.monotonic()
    with pytest.raises(Cancelled, match="grant expired"):
        await rig.dispatcher.execute(rig.world.op(operation="test.slow", issued_at=NOT_AFTER - 1))
    assert time.monotonic() - started < 5.0
    assert rig.log.entries()[-1].detail == "grant expired while running"
