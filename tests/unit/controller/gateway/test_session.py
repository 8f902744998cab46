"""What the gateway reads from an SSH login: the username and the client's key id."""

from __future__ import annotations

import asyncssh
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controller.gateway.hostkey import known_hosts_line
from controller.gateway.session import _USER, ssh_key_id
from permissions import key_id


def test_the_ssh_key_id_is_the_enrolled_key_id_of_the_same_key() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    as_ssh = asyncssh.import_private_key(pem).convert_to_public()
    assert ssh_key_id(as_ssh) == key_id(private.public_key())


@pytest.mark.parametrize(("username", "parsed"), [
    ("web-1+" + "0a" * 16, ("web-1", "0a" * 16)),
    ("db.eu_2+" + "f" * 32, ("db.eu_2", "f" * 32)),
    ("web-1", None), ("web-1+" + "0" * 31, None), ("web-1+" + "G" * 32, None),
    ("+" + "0" * 32, None), ("-x+" + "0" * 32, None), ("web 1+" + "0" * 32, None),
])
def test_usernames_name_an_agent_and_a_ticket(username: str,
                                               parsed: tuple[str, str] | None) -> None:
    match = _USER.match(username)
    assert (None if match is None else (match["agent"], match["ticket"])) == parsed


def test_known_hosts_line_pins_host_and_port() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    line = known_hosts_line(key, "127.0.0.1", 2222)
    name, kind, blob = line.split()
    assert (name, kind) == ("[127.0.0.1]:2222", "ssh-ed25519")
    assert asyncssh.import_public_key(f"{kind} {blob}") == key.convert_to_public()
    assert known_hosts_line(key, "gw.example", 22).startswith("gw.example ssh-ed25519 ")
