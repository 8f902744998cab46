"""1,000 dial-out agents held by one controller process, and a reconnect storm.

A real controller (``rmctl serve``, made with ``rmctl init`` by ``demo.deployment``) and, in
one child process (``--simulate``, run at a lower priority, ``nice 10``, so that the
simulation does not starve the controller it measures on a small machine), ``AGENTS``
simulated agents: each is the agent's own :class:`agent.dialout.DialOut`
loop with its own enrolled key and certificate on its own gRPC channel, i.e. its own TCP and
TLS connection (``grpc.use_local_subchannel_pool``: channels never share one). Operations
would be answered by a trivial executor; none are sent.

To save time the agents are enrolled directly against the controller's store and CA (keys
made here, certificates issued by ``controller.ca.Authority.certify``, rows written with
``controller.store.directory.save_agent``) instead of 1,000 join-token round trips.

Measured in one run:

1. the controller's RSS with zero agents connected (the baseline), after ``SETTLE_S``;
2. its RSS with all agents connected, after ``SETTLE_S``; memory per agent is the
   difference divided by ``AGENTS`` (target <= 150 KiB), and ``rmctl agent list`` must
   show all of them online;
3. a reconnect storm: the controller is stopped (SIGTERM) and started again; the time from
   the new process's start until every agent holds a new stream (target <= 15 s, with no
   agent failing to come back).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
from sqlalchemy.engine import Connection

from agent.dialout import DialOut
from controller.ca import Authority
from controller.config import load_config
from controller.store import Store, directory
from controller.store.records import AgentRecord
from demo.deployment import Deployment
from permissions import key_id, public_key_bytes
from pki.certs import generate_key
from pki.files import write_key, write_public
from pki.identity import Identity
from pki.tls import TlsFiles
from rmaint.v1 import agent_pb2

AGENTS = 1000
SETTLE_S = 3.0
STORM_LIMIT_S = 15.0
MEMORY_TARGET_KIB = 150.0
TRUST_DOMAIN = "example.test"


def enroll_directly(d: Deployment, count: int) -> Path:
    """``count`` agents of customer acme: keys and certificates in files (one directory
    each, under the returned one), rows in the store."""
    config = load_config(d.controller_home)
    authority = Authority.load(config.files.ca_key, config.files.ca_cert)
    now = time.time()
    records = []
    for n in range(count):
        agent_id = f"sim-{n:04d}"
        home = d.root / "agents" / agent_id
        key = generate_key()
        write_key(home / "agent.key", key)
        identity = Identity(TRUST_DOMAIN, "agent", agent_id)
        write_public(home / "agent.crt", authority.certify(key.public_key(), identity, now=now))
        shutil.copyfile(config.files.ca_cert, home / "ca.crt")
        records.append(AgentRecord(agent_id=agent_id, customer_id="acme", address="",
                                   public_key=public_key_bytes(key.public_key()),
                                   key_fingerprint=key_id(key.public_key()), enrolled_at=now,
                                   last_seen=None))
    store = Store.open(config.database_url)
    try:
        store.write_sync(_save_all, records)
    finally:
        store.close()
    return d.root / "agents"


def _save_all(conn: Connection, records: list[AgentRecord]) -> None:
    for record in records:
        directory.save_agent(conn, record)


async def _nothing(request: agent_pb2.ExecuteRequest) -> agent_pb2.ExecuteResponse:
    return agent_pb2.ExecuteResponse(result_json=b"{}")


async def _simulate(address: str, homes: Path) -> None:
    """The child: one DialOut per home; prints "<held> <reconnected>" every 50 ms until
    its stdin closes."""
    agents = [DialOut(controller=address, trust_domain=TRUST_DOMAIN, execute=_nothing,
                      files=TlsFiles(h / "agent.key", h / "agent.crt", h / "ca.crt"))
              for h in sorted(homes.iterdir())]
    tasks = [asyncio.create_task(a.run()) for a in agents]
    closed = asyncio.create_task(asyncio.to_thread(sys.stdin.read))
    while not closed.done():
        held = [a for a in agents if a.connected.is_set()]
        print(len(held), sum(1 for a in held if a.connections >= 2), flush=True)
        await asyncio.sleep(0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Agents:
    """The child process of simulated agents, and its last reported counts."""

    def __init__(self, address: str, homes: Path) -> None:
        self.held = self.reconnected = 0
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.dialout_scale", "--simulate", address, str(homes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "GRPC_VERBOSITY": "ERROR"})  # a storm's GOAWAYs are expected
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.held, self.reconnected = (int(n) for n in line.split())

    def wait(self, count: Callable[[], int], total: int, limit: float,
             started: float) -> tuple[float, int]:
        """Seconds from ``started`` (monotonic) until ``count()`` reaches ``total``, and
        how many were missing when ``limit`` seconds had passed."""
        while time.monotonic() - started < limit and count() < total:
            time.sleep(0.02)
        return time.monotonic() - started, total - count()

    def stop(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


def rss_of(d: Deployment) -> int:
    (proc,) = [p for p in d.processes if "rmctl" in str(p.args)]
    return int(psutil.Process(proc.pid).memory_info().rss)


def measure(d: Deployment, homes: Path, count: int) -> bool:
    time.sleep(SETTLE_S)
    baseline = rss_of(d)
    agents = Agents(f"127.0.0.1:{d.controller_port}", homes)
    try:
        connect_s, missing = agents.wait(lambda: agents.held, count, 120.0, time.monotonic())
        time.sleep(SETTLE_S)
        held = rss_of(d)
        online = _online(d)
        (proc,) = [p for p in d.processes if "rmctl" in str(p.args)]
        stopping = time.monotonic()
        d.stop(proc)
        restarted = time.monotonic()
        d.start_controller()
        storm_s, behind = agents.wait(lambda: agents.reconnected, count, STORM_LIMIT_S + 15.0,
                                      restarted)
    finally:
        agents.stop()
    print(f"dial-out scale: {count} agents, one controller process")
    memory_ok = _memory_report(count, baseline, held, connect_s, missing, online)
    storm_ok = storm_s <= STORM_LIMIT_S and behind == 0
    print(f"  controller stopped (SIGTERM) in     {restarted - stopping:8.2f} s")
    print(f"  reconnect storm, from the restart   {storm_s:8.2f} s    target <= "
          f"{STORM_LIMIT_S:.0f} s, no failures ({behind} did not come back): "
          f"{'met' if storm_ok else 'NOT met'}")
    return memory_ok and storm_ok


def _online(d: Deployment) -> int:
    listed = d.json(d.rmctl("agent", "list", "--json"))
    return sum(1 for a in listed if a["agent_id"].startswith("sim-") and a["online"])


def _memory_report(count: int, baseline: int, held: int, connect_s: float, missing: int,
                   online: int) -> bool:
    mib = 1024 * 1024
    per_agent_kib = (held - baseline) / count / 1024
    ok = per_agent_kib <= MEMORY_TARGET_KIB and not missing and online == count
    print(f"  controller RSS, no agents (baseline) {baseline / mib:8.1f} MiB")
    print(f"  controller RSS, {count} agents held  {held / mib:8.1f} MiB")
    print(f"  per agent                           {per_agent_kib:8.1f} KiB   target <= "
          f"{MEMORY_TARGET_KIB:.0f} KiB: {'met' if ok else 'NOT met'}")
    print(f"  first connection of all agents      {connect_s:8.2f} s    ({missing} missing; "
          f"{online} listed online by 'rmctl agent list')")
    return ok


def main() -> None:
    """Run the benchmark; a missed target is printed, not an error."""
    root = Path(tempfile.mkdtemp(prefix="rmaint-dialout-"))
    d = Deployment(root / "deployment")
    try:
        d.initialise()
        d.start_controller()
        d.rmctl("customer", "add", "acme", "--name", "Acme Corp",
                "--contract-start", "2026-01-01", "--contract-end", "2030-12-31")
        homes = enroll_directly(d, AGENTS)
        met = measure(d, homes, AGENTS)
        print("all targets met" if met else "a target was NOT met")
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


def simulate(address: str, homes: str) -> None:
    """The ``--simulate`` child: a lower priority, quiet about the expected refusals."""
    os.nice(10)
    logging.getLogger("agent.dialout").setLevel(logging.ERROR)
    asyncio.run(_simulate(address, Path(homes)))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--simulate"]:
        simulate(sys.argv[2], sys.argv[3])
    else:
        main()
