"""The tamper-evident log kernel: RFC 9162 Merkle trees, proofs, and signed checkpoints.

- :mod:`tlog.hashing` — leaf and node hashes (SHA-256 with 0x00 / 0x01 prefixes).
- :mod:`tlog.compact` — compact ranges: O(log n) appends, the root of the current size.
- :mod:`tlog.proofs` — inclusion and consistency proofs, from leaf hashes or stored nodes.
- :mod:`tlog.verify` — the RFC 9162 §2.1.3.2 and §2.1.4.2 verifiers; total.
- :mod:`tlog.keys`, :mod:`tlog.note` — C2SP signed notes with Ed25519 signatures and cosignatures.
- :mod:`tlog.checkpoint` — C2SP checkpoints (origin, size, root hash) as signed notes.

Pure: no I/O, no clock, no randomness (keys are parameters); imports nothing of rmaint's.
Every error is a :class:`TlogError`; the tree is drawn in :mod:`tlog._errors`.
"""

from tlog._errors import (
    BadNoteSignature,
    ConsistencyNotProven,
    InclusionNotProven,
    Malformed,
    MalformedCheckpoint,
    MalformedKey,
    MalformedNote,
    MalformedRange,
    NotInTree,
    ProofRejected,
    SignatureRejected,
    TlogError,
    UnverifiedNote,
    WrongOrigin,
)
from tlog.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
    verify_extends,
)
from tlog.compact import CompactRange, Node, root_hash
from tlog.hashing import EMPTY_ROOT, HASH_SIZE, MAX_SIZE, leaf_hash, node_hash
from tlog.keys import ED25519, NoteSigner, NoteVerifier, key_id, parse_verifier_key
from tlog.note import (
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    VerifiedNote,
    cosign,
    open_note,
    parse_note,
    sign_note,
)
from tlog.proofs import (
    NodeReader,
    compact_range_at,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    inclusion_proof_from,
    leaf_reader,
    root_at,
)
from tlog.verify import root_from_inclusion_proof, verify_consistency, verify_inclusion

__all__ = [
    "ED25519",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_SIGNATURES",
    "MAX_SIZE",
    "BadNoteSignature",
    "Checkpoint",
    "CompactRange",
    "ConsistencyNotProven",
    "InclusionNotProven",
    "Malformed",
    "MalformedCheckpoint",
    "MalformedKey",
    "MalformedNote",
    "MalformedRange",
    "Node",
    "NodeReader",
    "NotInTree",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "ProofRejected",
    "SignatureRejected",
    "SignedCheckpoint",
    "TlogError",
    "UnverifiedNote",
    "VerifiedNote",
    "WrongOrigin",
    "compact_range_at",
    "consistency_proof",
    "consistency_proof_from",
    "cosign",
    "inclusion_proof",
    "inclusion_proof_from",
    "key_id",
    "leaf_hash",
    "leaf_reader",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_note",
    "parse_verifier_key",
    "root_at",
    "root_from_inclusion_proof",
    "root_hash",
    "sign_checkpoint",
    "sign_note",
    "verify_consistency",
    "verify_extends",
    "verify_inclusion",
]
