"""Running a command's coroutine against the controller named by the home."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from controller.cli._app import Options

if TYPE_CHECKING:
    from controller.client.api import ControllerClient
    from controller.client.config import ClientConfig
    from controller.client.workflow import EngineerWorkflow

T = TypeVar("T")


def with_client(opts: Options, work: Callable[[ControllerClient], Awaitable[T]]) -> T:
    """Run ``work`` with a client for the home's identity; the channel is closed after."""
    # Imported here so that --help and local commands never load grpc.
    from controller.client.config import load_config

    return asyncio.run(_connected(load_config(opts.home), work))


def with_workflow(opts: Options, work: Callable[[EngineerWorkflow], Awaitable[T]]) -> T:
    """Run ``work`` with the engineer workflow of the home's identity."""
    from controller.client.config import load_config
    from controller.client.workflow import EngineerWorkflow

    config = load_config(opts.home)
    return asyncio.run(_connected(
        config, lambda client: work(EngineerWorkflow(config, client))))


async def _connected(config: ClientConfig,
                     work: Callable[[ControllerClient], Awaitable[T]]) -> T:
    from controller.client.api import ControllerClient

    async with ControllerClient.open(config) as client:
        return await work(client)
