"""Large contents (outputs, support bundles, recordings) kept by SHA-256.

Records in the log carry only the hash, so :func:`delete` under retention never changes a
record; a verifier reports such a blob as gone, not the log as broken.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.store.schema import blobs


def put(conn: Connection, data: bytes, now: float) -> str:
    """Store ``data`` once; its SHA-256 (hex), the key for :func:`get` and :func:`delete`."""
    digest = hashlib.sha256(data).hexdigest()
    exists = conn.execute(sa.select(blobs.c.sha256).where(blobs.c.sha256 == digest)).first()
    if exists is None:
        conn.execute(blobs.insert().values(sha256=digest, data=data, size=len(data),
                                           stored_at=now))
    return digest


def get(conn: Connection, digest: str) -> bytes | None:
    """The blob with that hash, or None (never stored, or deleted)."""
    data = conn.execute(sa.select(blobs.c.data).where(blobs.c.sha256 == digest)).scalar()
    return None if data is None else bytes(data)


def delete(conn: Connection, digest: str) -> bool:
    """Remove a blob (retention); False if there was none."""
    return conn.execute(blobs.delete().where(blobs.c.sha256 == digest)).rowcount == 1
