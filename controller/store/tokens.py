"""One-time join tokens. Only the SHA-256 of a secret is stored, never the secret."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.errors import EnrollmentRefused
from controller.store.records import JoinTokenRecord, dump, load
from controller.store.schema import join_tokens


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def add_token(conn: Connection, token: JoinTokenRecord) -> None:
    conn.execute(join_tokens.insert().values(dump(token)))


def consume_token(conn: Connection, secret: str, now: float) -> JoinTokenRecord:
    """Mark the token for ``secret`` used at ``now`` and return it.

    Raises EnrollmentRefused (with the precise reason, for the log) when the token is
    unknown, used or expired. The update is conditional, so of two concurrent uses at
    most one succeeds; the caller's transaction decides whether the use sticks.
    """
    digest = secret_hash(secret)
    usable = sa.and_(join_tokens.c.secret_sha256 == digest, join_tokens.c.used_at.is_(None),
                     join_tokens.c.expires_at > now)
    if conn.execute(join_tokens.update().where(usable).values(used_at=now)).rowcount == 1:
        row = conn.execute(
            join_tokens.select().where(join_tokens.c.secret_sha256 == digest)).one()
        return load(JoinTokenRecord, row)
    raise EnrollmentRefused(_why_unusable(conn, digest))


def _why_unusable(conn: Connection, digest: str) -> str:
    row = conn.execute(join_tokens.select().where(join_tokens.c.secret_sha256 == digest)).first()
    if row is None:
        return "unknown join token"
    token = load(JoinTokenRecord, row)
    if token.used_at is not None:
        return f"join token for {token.role} {token.subject} was already used"
    return f"join token for {token.role} {token.subject} expired"
