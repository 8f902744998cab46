"""Agentless devices the customer lets engineers reach: the ``[[devices]]`` of agent.toml.

::

    [[devices]]
    name = "core-switch"                         # what engineers name; they never see the rest
    host = "10.0.0.2"
    port = 22                                    # default 22
    user = "monitor"
    password = "..."                             # and/or key_file; never leaves the agent
    key_file = "/etc/rmaint/core-switch.key"     # an OpenSSH or PEM private key, mode 0600
    host_key = "ssh-ed25519 AAAAC3Nz..."         # required: the device's own host key
    commands = ["show version", "show interfaces {word}"]
    timeout = 20                                 # seconds for connect plus command

A device is reached only with its pinned ``host_key`` (an unknown or changed key is
refused), and runs only a command that matches one of its ``commands`` word for word.
A ``{word}`` placeholder stands for one word of letters, digits and ``/._:-`` (never a
quote, space or shell character), so an engineer can say ``show interfaces Gi0/1`` but
not ``show interfaces Gi0/1; reload``.

Pure: the parser raises :class:`DeviceConfigInvalid` (a ``ValueError``), which
``agent.config`` reports as a ``ConfigInvalid`` of agent.toml.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = "{word}"
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9/._:-]{0,63}")
_LITERAL = re.compile(r"[A-Za-z0-9/._:=,-]{1,64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9:.\[\]-]{1,253}")
_KEY_TYPES = frozenset({"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                        "ecdsa-sha2-nistp521", "ssh-rsa"})
_KEYS = frozenset({"name", "host", "port", "user", "password", "key_file", "host_key",
                   "commands", "timeout"})
MAX_COMMANDS = 256
DEFAULT_TIMEOUT = 20.0


class DeviceConfigInvalid(ValueError):
    """A ``[[devices]]`` entry breaks a rule; the message names the entry and key."""


@dataclass(frozen=True)
class CommandRule:
    """One allowlisted command: literal words and ``{word}`` placeholders."""

    words: tuple[str, ...]

    def __str__(self) -> str:
        return " ".join(self.words)

    def matches(self, words: Sequence[str]) -> bool:
        if len(words) != len(self.words):
            return False
        return all(WORD.fullmatch(got) if want == PLACEHOLDER else got == want
                   for want, got in zip(self.words, words, strict=True))


@dataclass(frozen=True, repr=False)
class Device:
    """One device; ``repr`` leaves the credentials out, so a traceback cannot leak them."""

    name: str
    host: str
    port: int
    user: str
    host_key: str
    commands: tuple[CommandRule, ...]
    password: str = ""
    key_file: str = ""
    timeout: float = DEFAULT_TIMEOUT

    def __repr__(self) -> str:
        return f"Device(name={self.name!r}, host={self.host!r}, port={self.port})"

    def allowed(self, command: str) -> tuple[str, ...] | None:
        """The words of ``command`` when an allowlisted rule matches it, else None."""
        words = tuple(command.split(" "))
        return words if any(rule.matches(words) for rule in self.commands) else None

    def to_toml(self) -> dict[str, Any]:
        table: dict[str, Any] = {"name": self.name, "host": self.host, "port": self.port,
                                 "user": self.user, "host_key": self.host_key,
                                 "commands": [str(rule) for rule in self.commands],
                                 "timeout": self.timeout}
        if self.password:
            table["password"] = self.password
        if self.key_file:
            table["key_file"] = self.key_file
        return table


@dataclass(frozen=True)
class DevicesConfig:
    devices: tuple[Device, ...] = ()

    def device(self, name: str) -> Device | None:
        return next((d for d in self.devices if d.name == name), None)


def parse(entries: Any) -> DevicesConfig:
    """The ``[[devices]]`` array of tables, checked; raises DeviceConfigInvalid."""
    if not isinstance(entries, list):
        raise DeviceConfigInvalid("[[devices]] must be an array of tables")
    devices = tuple(_device(entry, index) for index, entry in enumerate(entries))
    names = [d.name for d in devices]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DeviceConfigInvalid(f"[[devices]] names repeat: {', '.join(duplicated)}")
    return DevicesConfig(devices)


def to_toml(config: DevicesConfig) -> list[dict[str, Any]]:
    return [device.to_toml() for device in config.devices]


def _device(entry: Any, index: int) -> Device:
    where = f"[[devices]] entry {index + 1}"
    if not isinstance(entry, dict):
        raise DeviceConfigInvalid(f"{where} must be a table")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise DeviceConfigInvalid(f"{where}: unknown key {', '.join(unknown)}")
    name = _text(entry, "name", where, _NAME)
    where = f"[[devices]] {name!r}"
    password = _optional(entry, "password", where)
    key_file = _optional(entry, "key_file", where)
    if not password and not key_file:
        raise DeviceConfigInvalid(f"{where}: give password or key_file")
    if key_file and not key_file.startswith("/"):
        raise DeviceConfigInvalid(f"{where}: key_file must be an absolute path")
    return Device(name=name, host=_text(entry, "host", where, _HOST),
                  port=_port(entry.get("port", 22), where),
                  user=_text(entry, "user", where, _USER),
                  host_key=_host_key(entry.get("host_key"), where),
                  commands=_commands(entry.get("commands"), where),
                  password=password, key_file=key_file,
                  timeout=_timeout(entry.get("timeout", DEFAULT_TIMEOUT), where))


def _text(entry: dict[str, Any], key: str, where: str, pattern: re.Pattern[str]) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise DeviceConfigInvalid(f"{where}: {key} is missing or not a valid {key}")
    return value


def _optional(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str) or "\x00" in value:
        raise DeviceConfigInvalid(f"{where}: {key} must be a string")
    return value


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise DeviceConfigInvalid(f"{where}: port must be an integer from 1 to 65535")
    return value


def _timeout(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 300:
        raise DeviceConfigInvalid(f"{where}: timeout must be from 1 to 300 seconds")
    return float(value)


def _host_key(value: Any, where: str) -> str:
    """``type base64`` as in known_hosts or a .pub file (a trailing comment is dropped)."""
    parts = value.split() if isinstance(value, str) else []
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise DeviceConfigInvalid(
            f"{where}: host_key must be the device's public key, e.g. 'ssh-ed25519 AAAA...'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError as exc:
        raise DeviceConfigInvalid(f"{where}: host_key is not valid base64") from exc
    if not blob.startswith(len(parts[0]).to_bytes(4, "big") + parts[0].encode()):
        raise DeviceConfigInvalid(f"{where}: host_key's data does not match its type")
    return f"{parts[0]} {parts[1]}"


def _commands(value: Any, where: str) -> tuple[CommandRule, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_COMMANDS:
        raise DeviceConfigInvalid(f"{where}: commands must list 1 to {MAX_COMMANDS} commands")
    rules = []
    for command in value:
        words = tuple(command.split(" ")) if isinstance(command, str) else ()
        if not words or not all(w == PLACEHOLDER or _LITERAL.fullmatch(w) for w in words):
            raise DeviceConfigInvalid(
                f"{where}: command {command!r} must be words of letters, digits and /._:=,- "
                f"separated by single spaces, or {PLACEHOLDER}")
        rules.append(CommandRule(words))
    return tuple(rules)
