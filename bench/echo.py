"""A bare grpc.aio mutual-TLS echo: the peer that rmaint's full path is measured against."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from bench._stats import Latency
from pki import certs, files
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel, server_credentials, server_options

TRUST_DOMAIN = "bench.test"
METHOD = "/bench.Echo/Echo"


def make_pki(folder: Path) -> tuple[TlsFiles, TlsFiles]:
    """A CA, a server (controller identity) and a client (engineer identity) under ``folder``."""
    now = time.time()
    ca_key = certs.generate_key()
    ca = certs.create_ca(ca_key, TRUST_DOMAIN, now=now)
    files.write_public(folder / "ca.crt", certs.cert_pem(ca))
    pairs = []
    for role, name in (("controller", ""), ("engineer", "bench")):
        key = certs.generate_key()
        cert = certs.issue(ca_key, ca, key.public_key(), Identity(TRUST_DOMAIN, role, name),
                           now=now, lifetime=certs.SERVICE_CERT_LIFETIME)
        files.write_key(folder / f"{role}.key", key)
        files.write_public(folder / f"{role}.crt", certs.cert_pem(cert))
        pairs.append(TlsFiles(folder / f"{role}.key", folder / f"{role}.crt", folder / "ca.crt"))
    return pairs[0], pairs[1]


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def measure(call: Callable[[], Awaitable[object]], name: str, *, count: int,
                  concurrency: int = 8, seconds: float = 2.0) -> Latency:
    """Sequential latencies over ``count`` calls, then throughput with ``concurrency`` callers."""
    for _ in range(min(20, count)):
        await call()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Latency(name, tuple(samples), done / (time.perf_counter() - started))


async def measure_echo(folder: Path, payload: bytes, *, count: int) -> Latency:
    server_files, client_files = make_pki(folder)
    server = grpc.aio.server(options=server_options())
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(server_files))
    await server.start()
    try:
        async with secure_channel(f"127.0.0.1:{port}", client_files,
                                  Identity(TRUST_DOMAIN, "controller")) as channel:
            echo = channel.unary_unary(METHOD)
            return await measure(lambda: echo(payload, timeout=10), "bare grpc.aio mTLS echo",
                                 count=count)
    finally:
        await server.stop(None)
