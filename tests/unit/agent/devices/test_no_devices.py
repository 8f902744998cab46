"""An agent whose customer lists no device still answers device.list and device.exec."""

from __future__ import annotations

import asyncio

import pytest

from agent.device_ops import device_specs
from agent.devices.policy import DevicesConfig
from agent.errors import InvalidParams


def test_both_operations_exist_under_device_exec() -> None:
    specs = device_specs(DevicesConfig())
    assert [(s.name, s.scope) for s in specs] == [("device.list", "device.exec"),
                                                  ("device.exec", "device.exec")]


def test_the_list_is_empty() -> None:
    [listing, _] = device_specs(DevicesConfig())
    assert asyncio.run(listing.prepare({})()) == {"devices": []}


def test_the_list_still_refuses_parameters_it_does_not_take() -> None:
    [listing, _] = device_specs(DevicesConfig())
    with pytest.raises(InvalidParams, match=r"^device\.list: "):
        listing.prepare({"device": "core-switch"})


def test_an_exec_says_there_is_no_device() -> None:
    [_, execute] = device_specs(DevicesConfig())
    with pytest.raises(InvalidParams, match=r"^device.exec: the customer lists no device on "
                                             r"this agent \(\[\[devices\]\] in its agent.toml\)$"):
        execute.prepare({"device": "core-switch", "command": "show version"})
