"""The ``device.*`` operations (scope ``device.exec``).

``device.list`` names the devices and their allowlisted commands (never hosts, users or
credentials). ``device.exec`` runs one allowlisted command on one device and returns its
exit status and output, decoded as UTF-8 (invalid bytes replaced) and redacted line by
line like logs, with the count of what was hidden::

    {"device": "core-switch", "command": "show version", "exit_status": 0,
     "stdout": "...", "stderr": "", "stdout_bytes": 1234, "stderr_bytes": 0,
     "truncated": false, "redactions": 1, "duration_ms": 41.2}
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from agent.devices import ssh
from agent.devices.policy import Device, DevicesConfig
from agent.diag.params import ParamReader, Params
from agent.errors import OperationFailed
from agent.redact import LineRedactor

MAX_COMMAND = 1024


@dataclass(frozen=True)
class DeviceCommand:
    device: Device
    words: tuple[str, ...]


def parse_exec(params: Params, devices: DevicesConfig) -> DeviceCommand:
    reader = ParamReader("device.exec", params, ("device", "command"))
    name = reader.text("device", max_length=64)
    command = reader.text("command", max_length=MAX_COMMAND)
    device = devices.device(name)
    if device is None:
        reader.fail(f"device {name!r} is not in the customer's device list")
    words = device.allowed(command)
    if words is None:
        reader.fail(f"command {command!r} is not allowlisted for device {name!r}")
    return DeviceCommand(device, words)


def parse_list(params: Params, devices: DevicesConfig) -> DevicesConfig:
    ParamReader("device.list", params, ())
    return devices


async def list_devices(devices: DevicesConfig) -> dict[str, Any]:
    return {"devices": [{"name": d.name, "commands": [str(rule) for rule in d.commands]}
                        for d in sorted(devices.devices, key=lambda d: d.name)]}


async def execute(command: DeviceCommand) -> dict[str, Any]:
    started = time.monotonic()
    try:
        ran = await asyncio.to_thread(ssh.run, command.device, command.words)
    except ssh.DeviceError as exc:
        raise OperationFailed(str(exc)) from exc
    stdout, out_hidden = _redacted(ran.stdout)
    stderr, err_hidden = _redacted(ran.stderr)
    return {"device": command.device.name, "command": " ".join(command.words),
            "exit_status": ran.exit_status, "stdout": stdout, "stderr": stderr,
            "stdout_bytes": ran.stdout_bytes, "stderr_bytes": ran.stderr_bytes,
            "truncated": ran.stdout_bytes > len(ran.stdout) or ran.stderr_bytes > len(ran.stderr),
            "redactions": out_hidden + err_hidden,
            "duration_ms": round((time.monotonic() - started) * 1000, 1)}


def _redacted(data: bytes) -> tuple[str, int]:
    redactor, hidden, lines = LineRedactor(), 0, []
    for line in data.decode("utf-8", "replace").splitlines(keepends=True):
        text, count = redactor.redact(line)
        lines.append(text)
        hidden += count
    return "".join(lines), hidden
