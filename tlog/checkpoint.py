"""Checkpoints (c2sp.org/tlog-checkpoint): a log's signed statement of its size and root hash.

The body is the note text::

    <origin>
    <tree size, decimal, no leading zeros>
    <root hash, base64>
    [extension lines, each non-empty]

A checkpoint binds the size to the root: proofs are checked against the numbers it states.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tlog._errors import MalformedCheckpoint, WrongOrigin
from tlog._text import b64decode_strict, has_forbidden
from tlog.hashing import _is_hash, _is_size
from tlog.keys import NoteSigner, NoteVerifier
from tlog.note import VerifiedNote, open_note, sign_note
from tlog.verify import verify_consistency

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class Checkpoint:
    """A log's size and root hash, under the log's origin; constructing one checks every field."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _is_line(self.origin):
            raise MalformedCheckpoint(f"origin {self.origin!r} is not one non-empty line")
        if not _is_size(self.size):
            raise MalformedCheckpoint(f"size {self.size!r} is not a uint64")
        if not _is_hash(self.root_hash):
            raise MalformedCheckpoint("root hash is not 32 bytes")
        if type(self.extensions) is not tuple or not all(_is_line(ext) for ext in self.extensions):
            raise MalformedCheckpoint("extensions are non-empty lines")

    def body(self) -> str:
        """The note text of this checkpoint, final newline included."""
        lines = (self.origin, str(self.size), base64.b64encode(self.root_hash).decode(), *self.extensions)
        return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint read from a note that enough trusted keys signed."""

    checkpoint: Checkpoint
    note: VerifiedNote


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint body (a note's text); the inverse of :meth:`Checkpoint.body`."""
    if type(body) is not str or not body.endswith("\n"):
        raise MalformedCheckpoint("a checkpoint body is lines that end in a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedCheckpoint("a checkpoint has an origin, a size and a root hash")
    origin, size, root, *extensions = lines
    if _DECIMAL.fullmatch(size) is None:
        raise MalformedCheckpoint(f"size {size!r} is not a decimal number without leading zeros")
    root_hash = b64decode_strict(root)
    if root_hash is None:
        raise MalformedCheckpoint(f"root hash {root!r} is not canonical base64")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> bytes:
    """The checkpoint as a signed note, signed by each signer in order (the log's key first)."""
    return sign_note(checkpoint.body(), signers)


def open_checkpoint(data: bytes, verifiers: Sequence[NoteVerifier], *, origin: str,
                    quorum: int = 1) -> SignedCheckpoint:
    """Verify a signed checkpoint of the log ``origin``, signed by at least ``quorum`` trusted keys.

    Raises what :func:`~tlog.open_note` raises, :class:`~tlog.MalformedCheckpoint` for a note
    that is not a checkpoint and :class:`~tlog.WrongOrigin` for another log's checkpoint.
    """
    note = open_note(data, verifiers, quorum=quorum)
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != origin:
        raise WrongOrigin(f"checkpoint of {checkpoint.origin!r}, expected {origin!r}")
    return SignedCheckpoint(checkpoint, note)


def verify_extends(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Check that ``new`` is the same log as ``old``, grown only by appending (RFC 9162 §2.1.4).

    Raises :class:`~tlog.WrongOrigin` or :class:`~tlog.ConsistencyNotProven`.
    """
    if old.origin != new.origin:
        raise WrongOrigin(f"checkpoints of {old.origin!r} and {new.origin!r}")
    verify_consistency(old_size=old.size, new_size=new.size, old_root=old.root_hash,
                       new_root=new.root_hash, proof=proof)


def _is_line(value: object) -> bool:
    return type(value) is str and value != "" and "\n" not in value and not has_forbidden(value)
