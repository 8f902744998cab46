"""The device operations (scope ``device.exec``) bound to the customer's ``[[devices]]``.

``device.list`` and ``device.exec`` need no change consent: they run only the commands the
customer allowlisted per device (read-mostly, see :mod:`agent.devices.operations`), with
credentials that never leave the agent, against the device's pinned host key.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from agent.catalogue import KIB, MIB, OperationSpec, Runner
from agent.devices.policy import DevicesConfig
from agent.diag.params import ParamReader, Params


def device_specs(devices: DevicesConfig) -> tuple[OperationSpec, ...]:
    """``device.list`` and ``device.exec``. With no device listed they still answer: an
    empty list, and an exec refused because there is nothing to reach."""
    # The longest device timeout bounds an exec, with room to redact and reply.
    slowest = max((d.timeout for d in devices.devices), default=0.0)
    return (
        OperationSpec("device.list", "device.exec", False, 10.0, 64 * KIB,
                      partial(_prepare_list, devices)),
        OperationSpec("device.exec", "device.exec", False, slowest + 10.0, 2 * MIB,
                      partial(_prepare_exec, devices)),
    )


def _prepare_list(devices: DevicesConfig, params: Params) -> Runner:
    if not devices.devices:
        ParamReader("device.list", params, ())
        return _no_devices
    from agent.devices import operations  # paramiko only for an agent with devices
    listed = operations.parse_list(params, devices)
    return lambda: operations.list_devices(listed)


async def _no_devices() -> dict[str, Any]:
    return {"devices": []}


def _prepare_exec(devices: DevicesConfig, params: Params) -> Runner:
    if not devices.devices:
        ParamReader("device.exec", params, ("device", "command")).fail(
            "the customer lists no device on this agent ([[devices]] in its agent.toml)")
    from agent.devices import operations  # paramiko only for an agent with devices
    command = operations.parse_exec(params, devices)
    return lambda: operations.execute(command)
