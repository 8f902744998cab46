"""An in-memory controller log for pure tests: records chained like the store chains them."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

import tlog
from controller.audit.evidence import Consistency, Evidence, ProvenRecord
from controller.audit.records import (
    CLOSED,
    OPENED,
    OPERATION,
    OUTCOME,
    Chain,
    Event,
    Link,
    decode,
    encode,
    extends,
    heads,
    sha256_hex,
)

ORIGIN = "example.test/controller-log"


def signer(name: str = ORIGIN) -> tlog.NoteSigner:
    return tlog.NoteSigner(name, ed25519.Ed25519PrivateKey.generate())


class MemoryLog:
    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.envelopes: dict[str, str] = {}  # what the records' digests name, by digest
        self._last: dict[Chain, Link] = {}

    def append(self, event: Event) -> int:
        chain = extends(event)
        data = encode(event, prev=None if chain is None else self._last.get(chain))
        index = len(self.records)
        self.records.append(data)
        for head in heads(event):
            self._last[head] = Link(index, tlog.leaf_hash(data))
        return index

    def append_unlinked(self, event: Event) -> int:
        """Append ``event`` as a controller without case chains wrote it; it is still
        its chains' last record (as the store's upgrade takes it to be)."""
        data = encode(event)
        self.records.append(data)
        for head in heads(event):
            self._last[head] = Link(len(self.records) - 1, tlog.leaf_hash(data))
        return len(self.records) - 1

    def envelope(self, text: str) -> str:
        """Keep ``text`` as a signed envelope would be kept; its digest."""
        self.envelopes[sha256_hex(text)] = text
        return sha256_hex(text)

    def hashes(self, records: list[bytes] | None = None) -> list[bytes]:
        return [tlog.leaf_hash(r) for r in (self.records if records is None else records)]

    def checkpoint(self, key: tlog.NoteSigner, size: int | None = None) -> bytes:
        size = len(self.records) if size is None else size
        root = tlog.root_hash(self.hashes()[:size])
        return tlog.sign_checkpoint(tlog.Checkpoint(ORIGIN, size, root), [key])

    def evidence(self, key: tlog.NoteSigner, scope: dict[str, Any],
                 indices: list[int] | None = None, since: bytes | None = None,
                 since_size: int = 0) -> Evidence:
        hashes = self.hashes()
        chosen = range(len(self.records)) if indices is None else indices
        records = tuple(ProvenRecord(i, self.records[i], tlog.inclusion_proof(hashes, i))
                        for i in chosen)
        consistency = () if since is None else (
            Consistency(since, tlog.consistency_proof(hashes, since_size)),)
        named = {d for r in records for d in decode(r.record).digests.values()}
        envelopes = {d: t for d, t in self.envelopes.items() if d in named}
        return Evidence(ORIGIN, scope, self.checkpoint(key), records, consistency, envelopes)


def session(log: MemoryLog, sid: str, *, ops: int = 2, close: bool = True,
            case: str = "C-0001", at: float = 1000.0) -> list[int]:
    """Append a session with ``ops`` operations (attempt and outcome each); its indices."""
    done = [log.append(Event(OPENED, at, case, "alice", sid, {"grant": "G-1"}))]
    for n in range(ops):
        done.append(log.append(Event(OPERATION, at + n, case, "alice", sid,
                                     {"event": n, "seq": n + 1, "operation": "diag.system"})))
        done.append(log.append(Event(OUTCOME, at + n + 0.5, case, "alice", sid,
                                     {"event": n, "outcome": "ok"},
                                     {"receipt": log.envelope(f'{{"receipt":"{sid}/{n}"}}')})))
    if close:
        done.append(log.append(Event(CLOSED, at + ops, case, "controller", sid,
                                     {"reason": "closed"})))
    return done


def consent(log: MemoryLog, kind: str = "requested", case: str = "C-0001") -> int:
    return log.append(Event(f"consent.{kind}", 900.0, case, "alice",
                            details={"request": "R-1", "scopes": ["diag.read"]}))
