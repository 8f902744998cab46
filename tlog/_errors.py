"""Exceptions of the tamper-evident log kernel.

    TlogError
    ├── Malformed                  input that does not parse as what it claims to be
    │   ├── MalformedKey           a key name or verifier key string
    │   ├── MalformedNote          bytes that are not a well-formed signed note
    │   ├── MalformedCheckpoint    note text that is not a checkpoint body
    │   └── MalformedRange         a compact range whose nodes do not fit its size
    ├── ProofRejected              a proof that does not prove what was claimed
    │   ├── InclusionNotProven     the leaf is not shown to be in the tree
    │   └── ConsistencyNotProven   the newer tree is not shown to extend the older one
    ├── SignatureRejected          the signatures on a note are not acceptable
    │   ├── UnverifiedNote         too few signatures by trusted keys
    │   └── BadNoteSignature       a signature by a trusted key does not verify
    ├── WrongOrigin                a checkpoint of another log than the one expected
    └── NotInTree                  a proof asked for an index or size the tree does not have
"""

from __future__ import annotations


class TlogError(Exception):
    """Base of every error raised by ``tlog``."""


class Malformed(TlogError):
    """Input does not parse as what it claims to be."""


class MalformedKey(Malformed):
    """A key name or a verifier key string is not well formed."""


class MalformedNote(Malformed):
    """Bytes are not a well-formed C2SP signed note."""


class MalformedCheckpoint(Malformed):
    """Note text is not a well-formed C2SP checkpoint body."""


class MalformedRange(Malformed):
    """A compact range's nodes do not fit its size."""


class ProofRejected(TlogError):
    """A Merkle proof does not verify."""


class InclusionNotProven(ProofRejected):
    """An inclusion proof does not show the leaf at that index in the tree with that root."""


class ConsistencyNotProven(ProofRejected):
    """A consistency proof does not show that the newer tree extends the older one."""


class SignatureRejected(TlogError):
    """The signatures on a note are not acceptable."""


class UnverifiedNote(SignatureRejected):
    """Fewer trusted keys than required signed the note."""


class BadNoteSignature(SignatureRejected):
    """A signature that names a trusted key does not verify (forged, or the text was changed)."""


class WrongOrigin(TlogError):
    """A checkpoint names another log than the one the caller expects."""


class NotInTree(TlogError):
    """A proof was asked for a leaf index or tree size that the tree does not have."""
