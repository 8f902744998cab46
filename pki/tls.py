"""gRPC mutual-TLS credentials and the caller's identity from a verified peer certificate."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from pki.identity import Identity, IdentityError

MAX_MESSAGE = 4 * 1024 * 1024
_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


@dataclass(frozen=True)
class TlsFiles:
    """A key, its certificate and the CA that verifies peers."""

    key: Path
    cert: Path
    ca: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        return self.key.read_bytes(), self.cert.read_bytes(), self.ca.read_bytes()


def server_credentials(files: TlsFiles, *, require_client_cert: bool = True) -> grpc.ServerCredentials:
    key, cert, ca = files.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=require_client_cert
    )


def channel_options(server: Identity) -> list[tuple[str, Any]]:
    """Options that make the client check the server's role-specific DNS SAN."""
    return [
        ("grpc.ssl_target_name_override", server.dns_name),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        *_KEEPALIVE,
    ]


HANDSHAKE_TIMEOUT_MS = 10_000


def server_options() -> list[tuple[str, Any]]:
    return [
        # A port already served by another process is an error, never shared with it.
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        *_KEEPALIVE,
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        # A connection holds a file descriptor: one that does not finish its TLS handshake
        # soon, or carries no call for long, is closed (the client reconnects when it calls).
        ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
        ("grpc.max_connection_idle_ms", 300_000),
    ]


def secure_channel(address: str, files: TlsFiles, server: Identity) -> grpc.aio.Channel:
    key, cert, ca = files.read()
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                         certificate_chain=cert)
    return grpc.aio.secure_channel(address, creds, options=channel_options(server))


def peer_identity(context: grpc.aio.ServicerContext) -> Identity | None:
    """The caller's identity, from the certificate TLS verified; None if there is none."""
    # Here, not at the top: clients need this module, and x509 adds to every rmctl start.
    from cryptography import x509

    from pki.certs import identity_of

    auth = context.auth_context()
    pems = auth.get("x509_pem_cert") or []
    if len(pems) != 1:
        return None
    try:
        return identity_of(x509.load_pem_x509_certificate(pems[0]))
    except (ValueError, IdentityError):
        return None


def bind_problem(address: str) -> str | None:
    """Why a server could not listen on ``host:port``, in the system's words ("address
    already in use", "cannot assign requested address"), or None if it can. Asked before
    gRPC binds (whose own message only says that binding failed, after logging a line of
    its own on stderr) and again if it fails anyway."""
    host, _, port = address.rpartition(":")
    try:
        found = socket.getaddrinfo(host.strip("[]") or None, int(port), type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (OSError, ValueError) as exc:
        return f"not a usable address ({exc})"
    problems = []
    for family, kind, proto, _, where in found:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
                probe.bind(where)
        except OSError as exc:
            problems.append((exc.strerror or str(exc)).lower())
            continue
        return None  # gRPC serves on every address it can bind, if it can bind one
    return problems[0] if problems else "no address to listen on"


def why_not_listening(address: str) -> str:
    """:func:`bind_problem` for an address gRPC could not bind."""
    return bind_problem(address) or "the address is in use or not available"
