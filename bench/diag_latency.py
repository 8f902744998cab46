"""Latency and throughput of ``diag.system`` through controller and agent, next to a bare echo.

A real deployment (controller and agent processes, made and driven by the rmctl and rmagent
commands through :class:`demo.deployment.Deployment`) runs in a temporary directory. The
engineer's client library then runs each operation in this process exactly as
``rmctl diag system`` does (:meth:`EngineerWorkflow.run`: reserve the next sequence number,
sign with the engineer key, relay through the controller, check the agent's receipt), so
the measured path is engineer -> controller -> agent -> controller -> engineer.

The peer is the bare grpc.aio mutual-TLS echo of :mod:`bench.echo`, measured in the same run
on the same machine with a payload as large as a ``diag.system`` result.

Target: full path p50 <= 3x the bare echo p50. A missed target is printed, not an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bench._stats import Latency, report
from bench.echo import measure_echo
from bench.relay_floor import measure_relay
from controller.client.api import ControllerClient
from controller.client.config import load_config
from controller.client.engineer import SessionState, SessionStore, sign_operation
from controller.client.workflow import EngineerWorkflow, OperationResult, load_identity_key
from demo.deployment import Deployment

OPERATION = "diag.system"
TARGET_RATIO = 3.0
SEQUENTIAL_CALLS = 300
WARMUP_CALLS = 20
# The echo's throughput phase (bench.echo.measure) uses 8 concurrent callers for 2 s.
CONCURRENCY = 8
THROUGHPUT_SECONDS = 4.0


def result_bytes(done: OperationResult) -> bytes:
    """The agent's result_json, re-encoded as the agent encodes it (checked by digest)."""
    data = json.dumps(done.result, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()
    if "sha256:" + hashlib.sha256(data).hexdigest() != done.receipt.result_digest:
        raise RuntimeError("re-encoded diag.system result does not match the receipt")
    return data


async def sequential(workflow: EngineerWorkflow, state: SessionState, count: int) -> list[float]:
    """Milliseconds per call for ``count`` calls one after another in one session."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await workflow.run(state, OPERATION, {})
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def throughput(workflow: EngineerWorkflow, states: list[SessionState],
                     seconds: float) -> tuple[float, list[float]]:
    """Calls per second with one sequential caller per session, all sessions at once.

    The agent refuses a lower sequence number arriving after a higher one in the same
    session, so concurrent callers never share a session.
    """
    done = 0
    samples: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(state: SessionState) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await workflow.run(state, OPERATION, {})
            samples.append((time.perf_counter() - start) * 1000)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(state) for state in states))
    return done / (time.perf_counter() - started), samples


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _p50_ms(call: Callable[[], object], count: int = 200) -> float:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return median(samples)


def durable_commit_ms(folder: Path, row_bytes: int = 500) -> float:
    """p50 of one durable SQLite commit (WAL, synchronous=FULL, as both stores commit) of
    a row of ``row_bytes``, on the disk the deployment writes to."""
    conn = sqlite3.connect(folder / "commit-probe.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
        row = os.urandom(row_bytes)

        def commit() -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (data) VALUES (?)", (row,))
            conn.execute("COMMIT")
        return _p50_ms(commit)
    finally:
        conn.close()


def signature_ms(message_bytes: int = 600) -> tuple[float, float]:
    """p50 of one ECDSA P-256 signature and one verification (the engineer's and the
    agent's keys) over a message the size of an operation envelope."""
    key = ec.generate_private_key(ec.SECP256R1())
    message = os.urandom(message_bytes)
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    return (_p50_ms(lambda: key.sign(message, ec.ECDSA(hashes.SHA256()))),
            _p50_ms(lambda: public.verify(signature, message, ec.ECDSA(hashes.SHA256()))))


def print_floor(echo: Latency, relays: tuple[Latency, Latency], scratch: Path) -> None:
    """What the path cannot go below on this machine, whatever its code, measured in this
    run: the smallest grpc.aio program of its shape (:mod:`bench.relay_floor`), then its
    hops, durable commits and signature operations one by one."""
    commit = durable_commit_ms(scratch)
    sign, check = signature_ms()
    hops, commits, signatures = 2 * echo.p50, 4 * commit, 2 * sign + 4 * check
    floor = hops + commits + signatures
    least = hops + 2 * commit + signatures
    print("the path's floor on this machine, measured in this run (p50 ms; x the echo): the "
          "smallest grpc.aio\nprogram of its shape, caller -> relay -> echo in three processes "
          "(bench.relay_floor)")
    for relay in relays:
        print(f"  {relay.name:<76}{relay.p50:>9.3f}{relay.p50 / echo.p50:>8.2f}x")
    print("    (the two records that come before acting: the controller's attempt, the agent's "
          "decision;\n     SQLite commits in WAL mode with synchronous=FULL)")
    print("and part by part:")
    for label, value in (
        ("  2 gRPC hops (2 x the echo)", hops),
        ("  4 durable commits (agent: decision, result; controller: attempt, outcome)",
         commits),
        ("  2 ECDSA P-256 signatures and 4 verifications (operation and receipt)", signatures),
        ("sum", floor),
    ):
        print(f"{label:<78}{value:>9.3f}")
    print(f"sum / echo: {floor / echo.p50:.2f}x; with only the 2 commits that record before "
          f"act (agent decision, controller attempt): {least / echo.p50:.2f}x; "
          f"the target is {TARGET_RATIO}x")


def engineer_local_ms(workflow: EngineerWorkflow, scratch: Path, count: int = 100) -> tuple[float, float]:
    """p50 of the engineer's local steps of one call, on a throw-away session in ``scratch``:
    reserving a sequence number (flock, counter write; an fsync'd write once per lease) and
    signing the operation."""
    store = SessionStore(scratch / "probe-home")
    state = SessionState("S-probe", "C-probe", "web-1", "G-probe")
    store.add(state)
    key = load_identity_key(workflow.config)
    reserve, signing = [], []
    for _ in range(count):
        t0 = time.perf_counter()
        state, seq = store.reserve_seq(state.session_id)
        t1 = time.perf_counter()
        sign_operation(key, state, seq=seq, operation=OPERATION, params={}, now=int(time.time()))
        signing.append((time.perf_counter() - t1) * 1000)
        reserve.append((t1 - t0) * 1000)
    return median(reserve), median(signing)


async def bench(d: Deployment, case_id: str, scratch: Path) -> bool:
    config = load_config(d.engineer_home)
    async with ControllerClient.open(config) as client:
        workflow = EngineerWorkflow(config, client)
        main_state = (await workflow.open_session(case_id, "web-1")).state
        probe = await workflow.run(main_state, OPERATION, {})
        payload = result_bytes(probe)
        print(f"diag.system result: {len(payload)} bytes; echo payload: {len(payload)} bytes "
              f"(the agent's actual result JSON)", flush=True)

        echo = await measure_echo(scratch / "echo-pki", payload, count=SEQUENTIAL_CALLS)
        relays = (await measure_relay(scratch, payload, count=SEQUENTIAL_CALLS, recorded=False),
                  await measure_relay(scratch, payload, count=SEQUENTIAL_CALLS, recorded=True))

        for _ in range(WARMUP_CALLS):
            await workflow.run(main_state, OPERATION, {})
        first_seq = workflow.store.get(main_state.session_id).next_seq
        samples = await sequential(workflow, main_state, SEQUENTIAL_CALLS)
        events = (await client.get_session(main_state.session_id)).events
        relay = [e.duration_ms for e in events if e.seq >= first_seq and e.outcome == "ok"]
        reserve_ms, sign_ms = engineer_local_ms(workflow, scratch)
        worker_states = [(await workflow.open_session(case_id, "web-1")).state
                         for _ in range(CONCURRENCY)]
        rate, concurrent = await throughput(workflow, worker_states, THROUGHPUT_SECONDS)
        full = Latency("diag.system via controller+agent", tuple(samples), rate)

        for state in [main_state, *worker_states]:
            await workflow.close_session(state.session_id)

    print(f"sequential: {SEQUENTIAL_CALLS} calls each (after {WARMUP_CALLS} warm-up calls); "
          f"throughput: {CONCURRENCY} concurrent callers "
          f"(echo: one channel for 2 s; diag: one session each for {THROUGHPUT_SECONDS:.0f} s)")
    met = report(full, echo, target_ratio=TARGET_RATIO)
    under_load = Latency("", tuple(concurrent), 0.0)
    print(f"diag.system under {CONCURRENCY} concurrent sessions: p50 {under_load.p50:.3f} ms, "
          f"p99 {under_load.p99:.3f} ms over {len(concurrent)} calls")
    print(f"throughput ratio echo / diag.system: {echo.throughput / full.throughput:.1f}x")
    print("where a sequential call's time goes (p50 ms):")
    relay_ms = median(relay)
    rest = full.p50 - relay_ms - reserve_ms - sign_ms
    for label, value in (
        ("whole call, as the engineer's client sees it", full.p50),
        ("  controller -> agent -> controller (controller's session log)", relay_ms),
        ("  engineer: reserve the seq (flock, unsynced counter write)", reserve_ms),
        ("  engineer: sign the operation", sign_ms),
        ("  rest: engineer<->controller hop, controller checks and log writes,", rest),
    ):
        print(f"{label:<72}{value:>9.3f}")
    print("        engineer's receipt check")
    print_floor(echo, relays, scratch)
    return met


def main() -> int:
    print(f"== bench.diag_latency: {OPERATION} through controller and agent vs bare mTLS echo",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="rmaint-bench-") as tmp:
        scratch = Path(tmp)
        d = Deployment(scratch / "deployment")
        try:
            started = time.monotonic()
            d.standard_setup()
            case_id = d.open_case()
            d.grant_access(case_id)
            print(f"deployment ready in {time.monotonic() - started:.1f} s "
                  f"(controller :{d.controller_port}, agent :{d.agent_port})", flush=True)
            asyncio.run(bench(d, case_id, scratch))
        finally:
            d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
