"""Signing the log's checkpoints, and refusing to run on a log that was rolled back.

A checkpoint is signed only over a tree that extends the last one signed (same root at the
old size). The last checkpoint is kept in the store and in a file beside it: a database
restored from a backup holds fewer leaves than the file says, and :func:`check_not_rolled_back`
refuses it before the controller serves anything.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Connection

import tlog
from controller.audit.errors import CheckpointRefused, LogRolledBack
from controller.store import auditlog
from controller.store.auditlog import StoredCheckpoint
from pki.files import write_public

CHECKPOINT_FILE = "log-checkpoint"


def sign_checkpoint(conn: Connection, signer: tlog.NoteSigner, now: float,
                    ) -> StoredCheckpoint | None:
    """Sign and store a checkpoint of the current tree; None when nothing new to sign."""
    size, root = auditlog.head(conn)
    last = auditlog.latest_checkpoint(conn)
    if last is not None:
        if size == last.size and root == last.root_hash:
            return None
        _check_extends(conn, last, size, CheckpointRefused)
    note = tlog.sign_checkpoint(tlog.Checkpoint(signer.name, size, root), [signer])
    stored = StoredCheckpoint(size, root, note, now)
    auditlog.add_checkpoint(conn, stored)
    return stored


def check_not_rolled_back(conn: Connection, verifier: tlog.NoteVerifier,
                          kept: bytes | None) -> int:
    """Raise LogRolledBack unless the store's tree extends every checkpoint known; its size.

    ``kept`` is the checkpoint file's content (None when there is none yet).
    """
    try:
        size, _ = auditlog.head(conn)
    except tlog.TlogError as exc:
        raise LogRolledBack(f"the log's head row is damaged: {exc}") from exc
    if auditlog.leaf_count(conn) != size:
        raise LogRolledBack(f"the log's head says {size} leaves, the store holds "
                            f"{auditlog.leaf_count(conn)}")
    for last in _known(conn, verifier, kept):
        _check_extends(conn, last, size, LogRolledBack)
    return size


def _known(conn: Connection, verifier: tlog.NoteVerifier,
           kept: bytes | None) -> list[StoredCheckpoint]:
    known = []
    stored = auditlog.latest_checkpoint(conn)
    if stored is not None:
        known.append(stored)
    if kept is not None:
        try:
            signed = tlog.open_checkpoint(kept, [verifier], origin=verifier.name).checkpoint
        except tlog.TlogError as exc:
            raise LogRolledBack(f"the kept checkpoint does not verify: {exc}") from exc
        known.append(StoredCheckpoint(signed.size, signed.root_hash, kept, 0.0))
    return known


def _check_extends(conn: Connection, last: StoredCheckpoint, size: int,
                   error: type[CheckpointRefused | LogRolledBack]) -> None:
    if size < last.size:
        raise error(f"the log holds {size} leaves, fewer than the {last.size} "
                    f"of a checkpoint already signed")
    try:
        root = auditlog.root_at(conn, last.size)
    except tlog.TlogError as exc:
        raise error(f"the tree at size {last.size} cannot be rebuilt: {exc}") from exc
    if root != last.root_hash:
        raise error(f"the tree at size {last.size} has root {root.hex()}, the signed "
                    f"checkpoint says {last.root_hash.hex()}")


def read_kept(home: Path) -> bytes | None:
    path = home / CHECKPOINT_FILE
    return path.read_bytes() if path.exists() else None


def keep(home: Path, checkpoint: StoredCheckpoint) -> None:
    """Write the checkpoint file (atomically, durably) once its row has committed."""
    write_public(home / CHECKPOINT_FILE, checkpoint.note)
