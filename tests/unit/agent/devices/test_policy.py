"""The customer's [[devices]] list: strict parsing and word-for-word command matching."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given
from hypothesis import strategies as st

from agent.devices.policy import DeviceConfigInvalid, parse, to_toml


def _host_key() -> str:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode()


def _entry(**overrides: Any) -> dict[str, Any]:
    entry = {"name": "sw1", "host": "10.0.0.2", "user": "monitor", "password": secrets.token_hex(8),
             "host_key": _host_key(), "commands": ["show version", "show interfaces {word}"]}
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def test_parse_round_trips_in_normal_form() -> None:
    config = parse([_entry(host_key=_host_key() + " comment@host")])
    assert parse(to_toml(config)) == config
    device = config.devices[0]
    assert (device.port, device.timeout) == (22, 20.0)
    assert len(device.host_key.split()) == 2


@pytest.mark.parametrize("overrides, message", [
    ({"host_key": None}, "host_key"),
    ({"host_key": "ssh-ed25519 !!!"}, "base64"),
    ({"host_key": "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x07ssh-rsa").decode()},
     "does not match its type"),
    ({"password": None}, "password or key_file"),
    ({"password": None, "key_file": "relative.key"}, "absolute"),
    ({"commands": []}, "commands"),
    ({"commands": ["show version; reload"]}, "must be words"),
    ({"commands": ["show  version"]}, "must be words"),
    ({"commands": ["show $(id)"]}, "must be words"),
    ({"port": 0}, "port"),
    ({"port": True}, "port"),
    ({"timeout": 0}, "timeout"),
    ({"name": "../x"}, "name"),
    ({"user": "a b"}, "user"),
    ({"shell": "/bin/sh"}, "unknown key shell"),
])
def test_bad_entries_are_refused_with_the_key_named(overrides: dict[str, Any],
                                                    message: str) -> None:
    with pytest.raises(DeviceConfigInvalid, match=message):
        parse([_entry(**overrides)])


def test_names_must_be_unique_and_entries_tables() -> None:
    with pytest.raises(DeviceConfigInvalid, match="repeat: sw1"):
        parse([_entry(), _entry()])
    with pytest.raises(DeviceConfigInvalid, match="array of tables"):
        parse({"name": "sw1"})
    with pytest.raises(DeviceConfigInvalid, match="must be a table"):
        parse(["sw1"])


def test_credentials_stay_out_of_repr() -> None:
    password = secrets.token_urlsafe(12)
    device = parse([_entry(password=password)]).devices[0]
    assert password not in repr(device)


@given(st.text(max_size=80))
def test_only_safe_single_words_fill_a_placeholder(word: str) -> None:
    device = parse([_entry()]).devices[0]
    allowed = device.allowed(f"show interfaces {word}")
    if allowed is not None:
        assert allowed == ("show", "interfaces", word)
        assert word and all(c.isascii() and (c.isalnum() or c in "/._:-") for c in word)
        assert word[0].isalnum()
