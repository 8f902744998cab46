"""Preview plus apply of a 100-row correction, next to the same updates by raw driver calls.

The agent's path (``agent.data.ops``, in-process): reflect the allowlisted schema, run the
plan in a rolled-back transaction with before/after images, side-effect snapshots and the
digest; store the preview; verify and consume a signed change consent; apply in one
transaction (row locks, re-read, per-row checks, journal fsynced before COMMIT). The peer:
the same 100 ``UPDATE ... WHERE id = ?`` in one transaction with sqlite3 or psycopg.
Targets: under 2 s on SQLite and under 5 s on PostgreSQL (skipped when no server answers
at 127.0.0.1:5432).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent.changes import ChangeStore
from agent.context import OperationContext
from agent.data.ops import DataOperations
from agent.data.policy import DataConfig, DataSourcePolicy, TablePolicy

ROWS = 100
TARGETS = {"sqlite": 2.0, "postgresql": 5.0}
TABLE = TablePolicy("items", ("id", "name", "qty"))
CTX = OperationContext(agent_id="web-1", grant_id="G-1", case_id="C-1", session_id="S-1",
                       seq=1, engineer="alice", engineer_key_id="sha256:" + "ab" * 32)
_DDL = "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL, qty INTEGER)"


class _Trust:
    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        public = key.public_key()
        self._trust = p.AgentTrust("web-1", {p.key_id(public): public})

    def current(self) -> p.AgentTrust:
        return self._trust


def _plan(bump: int) -> dict[str, Any]:
    return {"updates": [{"table": "items", "key": {"id": i}, "set": {"qty": i + bump}}
                        for i in range(1, ROWS + 1)]}


def _run(runner: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        return await runner()
    return asyncio.run(go())


def agent_path(source: DataSourcePolicy, home: Path) -> float:
    """Seconds for preview + consent + apply of ROWS updates through the agent's code."""
    key = ed25519.Ed25519PrivateKey.generate()
    store = ChangeStore(home / "changes.db")
    ops = DataOperations(DataConfig((source,)), store, _Trust(key), time.time)
    try:
        started = time.perf_counter()
        digest = _run(ops.prepare_preview({"source": "shop", "plan": _plan(1000)}, CTX))["digest"]
        context = p.ChangeContext(change_digest=digest, agent_id="web-1", case_id="C-1",
                                  grant_id="G-1", engineer_key_id=CTX.engineer_key_id)
        consent = p.consent_to_change(context, key, consent_id="K-1", now=int(time.time()))
        store.add_consent("K-1", digest, consent, time.time())
        _run(ops.prepare_apply({"digest": digest}, CTX))
        return time.perf_counter() - started
    finally:
        ops.close()
        store.close()


def raw_sqlite(path: str) -> float:
    started = time.perf_counter()
    with sqlite3.connect(path) as db:
        db.executemany("UPDATE items SET qty = ? WHERE id = ?",
                       [(i + 2000, i) for i in range(1, ROWS + 1)])
    return time.perf_counter() - started


def raw_postgresql(dbname: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=dbname) as db:
        for i in range(1, ROWS + 1):
            db.execute("UPDATE items SET qty = %s WHERE id = %s", (i + 2000, i))
    return time.perf_counter() - started


def _fill(execute: Callable[[str], Any]) -> None:
    execute(_DDL)
    values = ", ".join(f"({i}, 'item {i}', {i})" for i in range(1, ROWS + 1))
    execute(f"INSERT INTO items VALUES {values}")  # noqa: S608 - constant numbers


def _report(engine: str, ours: float, raw: float) -> None:
    verdict = "met" if ours < TARGETS[engine] else "NOT met"
    print(f"{engine:<10}  preview+apply {ours * 1000:8.1f} ms   raw driver {raw * 1000:7.1f} ms"
          f"   ratio {ours / raw:6.1f}x   target < {TARGETS[engine]:.0f} s: {verdict}")


def bench_sqlite(root: Path) -> None:
    path = str(root / "shop.db")
    with sqlite3.connect(path) as db:
        _fill(db.execute)
    source = DataSourcePolicy("shop", "sqlite", (TABLE,), path=path)
    _report("sqlite", agent_path(source, root), raw_sqlite(path))


def bench_postgresql(root: Path) -> None:
    try:
        admin = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres",
                                autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        print(f"postgresql  unavailable: {exc}")
        return
    name = f"rmaint_bench_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with psycopg.connect(host="127.0.0.1", user="postgres", dbname=name,
                                 autocommit=True) as db:
                _fill(db.execute)
            source = DataSourcePolicy("shop", "postgresql", (TABLE,), host="127.0.0.1",
                                      port=5432, database=name, user="postgres")
            _report("postgresql", agent_path(source, root), raw_postgresql(name))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    print(f"preview + consent + apply of {ROWS} row updates vs the same updates, raw driver")
    with tempfile.TemporaryDirectory() as tmp:
        for engine, bench in (("sqlite", bench_sqlite), ("postgresql", bench_postgresql)):
            root = Path(tmp) / engine
            root.mkdir()
            bench(root)


if __name__ == "__main__":
    main()
