"""A server port is never shared, and a port that cannot be had is said in plain words."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import grpc
import pytest

from pki.tls import bind_problem, server_options, why_not_listening


@pytest.fixture
async def serving() -> AsyncIterator[int]:
    server = grpc.aio.server(options=server_options())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield port
    await server.stop(None)


async def test_a_second_server_cannot_take_a_served_port(serving: int) -> None:
    second = grpc.aio.server(options=server_options())
    with pytest.raises(RuntimeError):
        second.add_insecure_port(f"127.0.0.1:{serving}")
    assert why_not_listening(f"127.0.0.1:{serving}") == "address already in use"


def test_a_port_held_by_any_listener_is_in_use() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        assert why_not_listening(f"127.0.0.1:{held.getsockname()[1]}") == \
            "address already in use"


@pytest.mark.parametrize(("address", "says"), [
    ("192.0.2.1:7501", "cannot assign requested address"),  # not an address of this host
    ("127.0.0.1:notaport", "not a usable address"),
    ("no-such-host.invalid:7501", "not a usable address"),
])
def test_other_reasons_are_named(address: str, says: str) -> None:
    assert why_not_listening(address).startswith(says)


def test_a_free_port_has_no_problem() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert bind_problem(f"127.0.0.1:{free}") is None


def test_a_name_with_one_bindable_address_has_no_problem(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As gRPC does: a name resolving to an address of this host and one that is not
    (IPv6 off, say) still serves on the first."""
    resolved = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::1", 7501, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: resolved)
    assert bind_problem("dual.test:0") is None
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: resolved[:1])
    assert bind_problem("dual.test:0") == "cannot assign requested address"
