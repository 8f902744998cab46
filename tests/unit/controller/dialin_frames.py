"""What a dial-out Link would write to its agent, for the Link tests."""

from __future__ import annotations

import asyncio

from controller.dialin import Link
from rmaint.v1 import controller_pb2 as pb


async def written(link: Link) -> list[pb.ControllerFrame]:
    """The frames the link would write, until nothing more is queued."""
    frames: list[pb.ControllerFrame] = []
    stream = link.outgoing()
    while True:
        try:
            frames.append(await asyncio.wait_for(anext(stream), 0.05))
        except (TimeoutError, StopAsyncIteration):
            return frames
