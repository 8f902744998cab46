"""The smallest grpc.aio program shaped like rmaint's path: where the floor is read from.

Three processes on loopback, as in a deployment: the caller (this process), a relay and an
echo server, each on its own event loop, every hop on mutual TLS with :mod:`bench.echo`'s
PKI. The relay forwards each call to the echo server and answers with its answer: engineer
-> controller -> agent -> controller -> engineer, with nothing else on the way. Measured
in the same run as the bare echo, with the same payload:

- ``bare``: forwarding only, two hops;
- ``recorded``: the relay commits the request durably (SQLite, WAL, ``synchronous=FULL``,
  in a worker thread, as an asyncio server must) before it forwards, and the echo server
  does the same before it answers: the two records that invariant 6 puts before an
  operation runs (the controller's attempt, the agent's decision).

No signatures, no authorization, no logging, no operation: rmaint's full path, which has
all of these and two more durable records, is not expected to be faster than ``recorded``.
Run alone: ``python -m bench.relay_floor``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

from bench._stats import Latency
from bench.echo import METHOD, TRUST_DOMAIN, measure, measure_echo
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel, server_credentials, server_options

_SERVER = Identity(TRUST_DOMAIN, "controller")
_ROOT = Path(__file__).resolve().parents[1]  # where ``-m bench.relay_floor`` imports from
START_SECONDS = 30.0


class Recorder:
    """Durable commits of each request, one at a time in a thread of their own."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS record (id INTEGER PRIMARY KEY, data BLOB)")
        self._thread = ThreadPoolExecutor(1)

    def _commit(self, data: bytes) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("INSERT INTO record (data) VALUES (?)", (data,))
        self._conn.execute("COMMIT")

    async def record(self, data: bytes) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._commit, data)


async def _serve(role: str, pki: Path, record: Path | None, upstream: int) -> None:
    """Serve until stdin closes; the bound port is printed on stdout first."""
    server_files = TlsFiles(pki / "controller.key", pki / "controller.crt", pki / "ca.crt")
    client_files = TlsFiles(pki / "engineer.key", pki / "engineer.crt", pki / "ca.crt")
    recorder = Recorder(record) if record is not None else None
    channel = secure_channel(f"127.0.0.1:{upstream}", client_files, _SERVER) \
        if role == "relay" else None
    forward = channel.unary_unary(METHOD) if channel is not None else None

    async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if recorder is not None:
            await recorder.record(request)
        if forward is not None:
            return await forward(request, timeout=10)  # type: ignore[no-any-return]
        return request

    server = grpc.aio.server(options=server_options())
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(handle)}),))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(server_files))
    await server.start()
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(None)
    if channel is not None:
        await channel.close()


@contextlib.contextmanager
def _process(role: str, pki: Path, record: Path | None, upstream: int = 0) -> Iterator[int]:
    """A server process of ``role`` and its port; it stops when its stdin closes."""
    argv = [sys.executable, "-m", "bench.relay_floor", "--serve", role, "--pki", str(pki),
            "--upstream", str(upstream)]
    if record is not None:
        argv += ["--record", str(record)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=_ROOT)
    try:
        yield _port(proc, role)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _port(proc: subprocess.Popen[str], role: str) -> int:
    """The port ``proc`` prints once it serves; RuntimeError if none comes in time."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_SECONDS)
    line = proc.stdout.readline() if ready else ""
    if not line.strip().isdigit():
        raise RuntimeError(f"bench.relay_floor {role} did not start within {START_SECONDS} s")
    return int(line)


async def _through_relay(port: int, client: TlsFiles, payload: bytes, name: str,
                         count: int) -> Latency:
    async with secure_channel(f"127.0.0.1:{port}", client, _SERVER) as channel:
        echo = channel.unary_unary(METHOD)
        return await measure(lambda: echo(payload, timeout=10), name, count=count)


async def measure_relay(folder: Path, payload: bytes, *, count: int,
                        recorded: bool) -> Latency:
    """Latency of ``payload`` through a relay process to an echo process (see above);
    ``recorded``: each of them commits the request durably before going on. ``folder``
    (the records' disk) must hold the PKI of :func:`bench.echo.make_pki`."""
    pki = folder / "echo-pki"
    client = TlsFiles(pki / "engineer.key", pki / "engineer.crt", pki / "ca.crt")
    tag = "recorded" if recorded else "bare"
    echo_db = folder / f"echo-{tag}.db" if recorded else None
    relay_db = folder / f"relay-{tag}.db" if recorded else None
    name = "relay -> echo, " + ("each commits the request durably first" if recorded
                                else "nothing else")
    with _process("echo", pki, echo_db) as echo_port, \
            _process("relay", pki, relay_db, echo_port) as relay_port:
        return await _through_relay(relay_port, client, payload, name, count)


async def _alone(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="rmaint-bench-") as tmp:
        folder = Path(tmp)
        payload = os.urandom(477)
        echo = await measure_echo(folder / "echo-pki", payload, count=count)
        rows = [echo] + [await measure_relay(folder, payload, count=count, recorded=flag)
                         for flag in (False, True)]
        width = max(len(row.name) for row in rows) + 2
        for row in rows:
            print(f"{row.name:<{width}}{row.p50:>9.3f} ms p50{row.p50 / echo.p50:>8.2f}x the echo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=("echo", "relay"), help=argparse.SUPPRESS)
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=300, help="sequential calls per row")
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve, args.pki, args.record, args.upstream))
    else:
        asyncio.run(_alone(args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
