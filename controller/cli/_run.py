"""Running a command's coroutine against the controller named by the home."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from controller.cli import _gc
from controller.cli._app import Options

if TYPE_CHECKING:
    from controller.client.api import ControllerClient
    from controller.client.config import ClientConfig
    from controller.client.workflow import EngineerWorkflow

T = TypeVar("T")
# What every connected command loads (the client, and the renewal its channel makes first
# when due); imported on use so that --help and local commands never load grpc.
_CLIENT = ("asyncio", "controller.client.api", "controller.client.renew")


def with_client(opts: Options, work: Callable[[ControllerClient], Awaitable[T]]) -> T:
    """Run ``work`` with a client for the home's identity; the channel is closed after."""
    import asyncio

    return asyncio.run(_connected(_config(opts.home), work))


def with_workflow(opts: Options, work: Callable[[EngineerWorkflow], Awaitable[T]]) -> T:
    """Run ``work`` with the engineer workflow of the home's identity."""
    import asyncio

    from controller.client.workflow import EngineerWorkflow

    config = _config(opts.home)
    return asyncio.run(_connected(
        config, lambda client: work(EngineerWorkflow(config, client))))


def _config(home: Path) -> ClientConfig:
    """The home's client configuration, once the client is loaded and the command's work
    begins (see :func:`controller.cli._gc.working`)."""
    for module in _CLIENT:
        importlib.import_module(module)
    from controller.client.config import load_config

    config = load_config(home)
    _gc.working()
    return config


async def _connected(config: ClientConfig,
                     work: Callable[[ControllerClient], Awaitable[T]]) -> T:
    from controller.client.api import ControllerClient

    async with ControllerClient.open(config) as client:
        return await work(client)
