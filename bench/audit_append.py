"""Durable appends to the controller's log with group commit, against raw SQLite executemany.

- rmaint: ``CONCURRENCY`` producers each ``await appender.append(event)`` (controller.audit.
  appender) on a migrated SQLite store (WAL, synchronous=FULL); an event counts once its
  batch has committed. Each append is a canonical record, its leaf hash, the perfect subtrees
  it completes and the log head, all in the store.
- peer: the same records' bytes inserted with ``sqlite3`` ``executemany`` into a bare table
  (index, record, leaf hash precomputed) in one transaction, same pragmas, same run.

Target: >= 20,000 events/s durable. Prints both rates and the ratio. About 20 s.
Run with ``.venv/bin/python -m bench.audit_append``.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import tempfile
import time
from pathlib import Path

from controller.audit.appender import Appender
from controller.audit.records import OPERATION, Event, encode
from controller.store import Store, migrate

EVENTS = 50_000
CONCURRENCY = 500
TARGET = 20_000.0


def event(i: int) -> Event:
    return Event(OPERATION, 1_800_000_000.0 + i, f"C-{i % 97:04d}", "alice", f"S-{i % 500}",
                 {"event": i, "seq": i // 500 + 1, "operation": "diag.system",
                  "params_sha256": hashlib.sha256(str(i).encode()).hexdigest()},
                 {"operation_envelope": hashlib.sha256(b"e%d" % i).hexdigest()})


async def _produce(appender: Appender, events: list[Event], worker: int) -> None:
    for i in range(worker, EVENTS, CONCURRENCY):
        await appender.append(events[i])


async def rmaint_rate(folder: Path) -> float:
    store = Store.open(f"sqlite:///{folder}/controller.db")
    try:
        await asyncio.to_thread(migrate.upgrade, store)
        events = [event(i) for i in range(EVENTS)]  # made before timing, as for the peer
        appender = Appender(store)
        appender.start()
        started = time.perf_counter()
        await asyncio.gather(*(_produce(appender, events, w) for w in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        await appender.stop()
    finally:
        store.close()
    return EVENTS / elapsed


def peer_rate(folder: Path) -> float:
    rows = [(i, data, hashlib.sha256(b"\0" + data).digest())
            for i, data in ((i, encode(event(i))) for i in range(EVENTS))]
    db = sqlite3.connect(folder / "peer.db", isolation_level=None)
    try:
        for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"):
            db.execute(pragma)
        db.execute("CREATE TABLE leaves (leaf_index INTEGER PRIMARY KEY, record BLOB, "
                   "leaf_hash BLOB)")
        started = time.perf_counter()
        db.execute("BEGIN")
        db.executemany("INSERT INTO leaves VALUES (?, ?, ?)", rows)
        db.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        db.close()
    return EVENTS / elapsed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="rmaint-bench-") as tmp:
        ours = asyncio.run(rmaint_rate(Path(tmp)))
        peer = peer_rate(Path(tmp))
    print(f"{'path':<52}{'events/s':>12}")
    print(f"{'rmaint log append, group commit (' + str(CONCURRENCY) + ' producers)':<52}"
          f"{ours:>12,.0f}")
    print(f"{'raw sqlite3 executemany, one transaction':<52}{peer:>12,.0f}")
    print(f"ratio rmaint/raw: {ours / peer:.2f}")
    print(f"target >= {TARGET:,.0f} events/s durable: {'met' if ours >= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
