"""Running one allowlisted command on a device over SSH (paramiko), blocking.

The device's host key must equal the pinned one: paramiko is given that key as the only
known key for the host and a policy that rejects anything else, so a device that shows
another key (or another type) is refused before authentication, and nothing runs.
No SSH agent and no key files other than the configured one are ever tried.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import paramiko

from agent.devices.policy import Device

OUTPUT_LIMIT = 256 * 1024  # bytes kept per stream; the rest is counted, not kept
_CHUNK = 32 * 1024


class DeviceError(Exception):
    """The command could not run; the message is safe to show (no credentials)."""


@dataclass(frozen=True)
class Ran:
    exit_status: int
    stdout: bytes
    stderr: bytes
    stdout_bytes: int  # as sent by the device, before truncation
    stderr_bytes: int


def host_key_entry(device: Device) -> str:
    """The known_hosts name of the device: ``host``, or ``[host]:port`` off port 22."""
    return device.host if device.port == 22 else f"[{device.host}]:{device.port}"


def run(device: Device, words: tuple[str, ...], *, limit: int = OUTPUT_LIMIT) -> Ran:
    """Run ``words`` on ``device``; raise DeviceError when that cannot be done."""
    deadline = time.monotonic() + device.timeout
    client = paramiko.SSHClient()
    key_type, key_data = device.host_key.split(" ")
    client.get_host_keys().add(host_key_entry(device), key_type,
                               paramiko.PKey.from_type_string(key_type,
                                                              base64.b64decode(key_data)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        _connect(client, device)
        return _exec(client, " ".join(words), deadline, limit)
    finally:
        client.close()


def _connect(client: paramiko.SSHClient, device: Device) -> None:
    try:
        pkey = paramiko.PKey.from_path(device.key_file) if device.key_file else None
    except (OSError, paramiko.SSHException) as exc:
        raise DeviceError(f"device {device.name}: cannot read its key_file") from exc
    try:
        client.connect(device.host, device.port, username=device.user,
                       password=device.password or None, pkey=pkey, allow_agent=False,
                       look_for_keys=False, timeout=device.timeout,
                       banner_timeout=device.timeout, auth_timeout=device.timeout,
                       channel_timeout=device.timeout)
    except paramiko.BadHostKeyException as exc:
        raise DeviceError(f"device {device.name}: its host key does not match the key "
                          "pinned in the agent's configuration; nothing was run") from exc
    except paramiko.AuthenticationException as exc:
        raise DeviceError(f"device {device.name}: authentication failed") from exc
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise DeviceError(f"device {device.name}: it offered a host key of another type "
                              "than the pinned one; nothing was run") from exc
        raise DeviceError(f"device {device.name}: SSH failed: {exc}") from exc
    except (OSError, EOFError) as exc:
        raise DeviceError(f"device {device.name}: cannot connect: "
                          f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from exc


def _exec(client: paramiko.SSHClient, command: str, deadline: float, limit: int) -> Ran:
    transport = client.get_transport()
    if transport is None:
        raise DeviceError("the SSH connection closed before the command ran")
    channel = transport.open_session(timeout=max(0.1, deadline - time.monotonic()))
    try:
        channel.exec_command(command)
        out, err = _Stream(limit), _Stream(limit)
        while not (channel.exit_status_ready() and not channel.recv_ready()
                   and not channel.recv_stderr_ready()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceError("the command did not finish within the device's timeout")
            _drain(channel, out, err, min(left, 0.2))
        return Ran(channel.recv_exit_status(), out.kept(), err.kept(), out.total, err.total)
    finally:
        channel.close()


def _drain(channel: paramiko.Channel, out: _Stream, err: _Stream, wait: float) -> None:
    """Take what is there, or wait up to ``wait`` seconds for output or the exit status."""
    channel.settimeout(wait)
    try:
        if channel.recv_stderr_ready():
            err.add(channel.recv_stderr(_CHUNK))
        elif channel.recv_ready() or not channel.eof_received:
            out.add(channel.recv(_CHUNK))
        else:  # output ended; the exit status is on its way
            channel.status_event.wait(wait)
    except TimeoutError:
        pass


class _Stream:
    def __init__(self, limit: int) -> None:
        self._parts: list[bytes] = []
        self._limit = limit
        self.total = 0

    def add(self, data: bytes) -> None:
        room = self._limit - min(self.total, self._limit)
        if room:
            self._parts.append(data[:room])
        self.total += len(data)

    def kept(self) -> bytes:
        return b"".join(self._parts)
