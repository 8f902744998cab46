"""The gateway's SSH host key: Ed25519, made once under the controller home, mode 0600.

Engineers pin its public key (``rmctl gateway-key`` prints the known_hosts line), so a
new key must be a deliberate act: delete the file and hand out the new line.
"""

from __future__ import annotations

from pathlib import Path

import asyncssh

from pki.files import write_private

HOST_KEY_NAME = "gateway_host_key"


def host_key_path(home: Path) -> Path:
    return home / HOST_KEY_NAME


def load_or_create(home: Path) -> asyncssh.SSHKey:
    """The host key of ``home``, made now if there is none."""
    path = host_key_path(home)
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519")
        write_private(path, key.export_private_key("openssh"))
        return key
    return asyncssh.read_private_key(str(path))


def known_hosts_line(key: asyncssh.SSHKey, host: str, port: int) -> str:
    """The OpenSSH known_hosts line that pins ``key`` for ``host:port``."""
    name = host if port == 22 else f"[{host}]:{port}"
    public = key.export_public_key("openssh").decode().split()
    return f"{name} {public[0]} {public[1]}"
