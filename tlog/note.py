"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures.

A note is UTF-8 text ending in a newline, a blank line, then one line per signature::

    — <key name> base64(key ID ‖ Ed25519 signature of the text)

A reader trusts keys by name *and* key ID (:mod:`tlog.keys`). A signature whose name and ID
match no trusted key is someone else's (another witness, a rotated key): it is kept but not
counted, as the specification requires. A signature that matches a trusted key and does not
verify rejects the whole note.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tlog._errors import BadNoteSignature, MalformedKey, MalformedNote, UnverifiedNote
from tlog._text import b64decode_strict, has_forbidden, is_key_name
from tlog.keys import NoteSigner, NoteVerifier

MAX_SIGNATURES = 100
"""Notes with more signature lines are refused (the specification asks for at least 16)."""

_PREFIX = "— "  # em dash U+2014, space


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID, and the signature bytes after the ID."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not is_key_name(self.name):
            raise MalformedNote(f"key name {self.name!r} is empty or has a space, a plus or a control")
        if type(self.key_id) is not bytes or len(self.key_id) != 4:
            raise MalformedNote(f"signature by {self.name} has no 4-byte key ID")
        if type(self.signature) is not bytes or not self.signature:
            raise MalformedNote(f"signature by {self.name} is empty")

    def line(self) -> str:
        """The signature line, final newline included."""
        return f"{_PREFIX}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True)
class Note:
    """A note's text and its signatures as written. Constructing one checks its form only."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        if type(self.text) is not str or not self.text.endswith("\n"):
            raise MalformedNote("note text must end in a newline")
        if has_forbidden(self.text):
            raise MalformedNote("note text has a control character other than newline, or bad Unicode")
        if len(self.signatures) > MAX_SIGNATURES:
            raise MalformedNote(f"more than {MAX_SIGNATURES} signatures")
        if not all(type(sig) is NoteSignature for sig in self.signatures):
            raise MalformedNote("signatures are NoteSignature values")

    def encode(self) -> bytes:
        """The signed note's bytes: text, blank line, signature lines."""
        return (self.text + "\n" + "".join(sig.line() for sig in self.signatures)).encode()


@dataclass(frozen=True)
class VerifiedNote:
    """A note, and the trusted keys whose signatures on it verified (at least the quorum)."""

    note: Note
    verified_by: tuple[NoteVerifier, ...]

    @property
    def text(self) -> str:
        return self.note.text


def parse_note(data: bytes) -> Note:
    """Parse a signed note's bytes, verifying nothing (:func:`open_note` verifies)."""
    try:
        message = data.decode("utf-8") if type(data) is bytes else None
    except UnicodeDecodeError:
        message = None
    if message is None:
        raise MalformedNote("a signed note is UTF-8 bytes")
    if has_forbidden(message):
        raise MalformedNote("a note has no control characters other than newline")
    split = message.rfind("\n\n")
    if split < 0:
        raise MalformedNote("no blank line between the text and the signatures")
    block = message[split + 2:]
    if not block.endswith("\n"):
        raise MalformedNote("the signature block does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"more than {MAX_SIGNATURES} signatures")
    return Note(message[:split + 1], tuple(_parse_signature_line(line) for line in lines))


def open_note(data: bytes, verifiers: Sequence[NoteVerifier], *, quorum: int = 1) -> VerifiedNote:
    """Parse a signed note and verify it: at least ``quorum`` different trusted keys must have signed.

    Raises :class:`~tlog.MalformedNote` for bytes that are not a note, :class:`~tlog.MalformedKey`
    for two different trusted keys with one name and key ID, :class:`~tlog.BadNoteSignature` when
    a signature matching a trusted key fails (forged, or text changed after signing), and
    :class:`~tlog.UnverifiedNote` when fewer than ``quorum`` trusted keys signed.
    """
    note = parse_note(data)
    trusted = _index(verifiers)
    if type(quorum) is not int or quorum < 1:
        raise UnverifiedNote(f"quorum {quorum!r} is not a positive number of keys")
    text = note.text.encode()
    verified: dict[bytes, NoteVerifier] = {}  # by public key: one key pinned under two names counts once
    for sig in note.signatures:
        verifier = trusted.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verifies(text, sig.signature):
            raise BadNoteSignature(f"signature by {sig.name}+{sig.key_id.hex()} does not verify")
        verified.setdefault(verifier.public_key, verifier)
    if len(verified) < quorum:
        raise UnverifiedNote(f"{len(verified)} trusted key(s) signed the note, {quorum} required")
    return VerifiedNote(note, tuple(verified.values()))


def cosign(note: Note, signers: Sequence[NoteSigner]) -> Note:
    """``note`` with the signers' signatures appended, each replacing one by the same name and key ID.

    Cosigning says nothing about the signatures already there: verify them first (:func:`open_note`).
    """
    text = note.text.encode()
    mine = {(signer.name, signer.key_id) for signer in signers}
    kept = tuple(sig for sig in note.signatures if (sig.name, sig.key_id) not in mine)
    added = tuple(NoteSignature(s.name, s.key_id, s.sign(text)) for s in signers)
    return Note(note.text, kept + added)


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """The signed note of ``text`` (which must end in a newline), signed by each signer in order."""
    if not signers:
        raise MalformedNote("a signed note needs at least one signature")
    return cosign(Note(text), signers).encode()


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_PREFIX):
        raise MalformedNote("a line after the blank line is not a signature line")
    name, _, encoded = line[len(_PREFIX):].partition(" ")
    raw = b64decode_strict(encoded)
    if raw is None or len(raw) < 5:
        raise MalformedNote(f"signature by {name!r} is not base64 of a key ID and a signature")
    return NoteSignature(name, raw[:4], raw[4:])


def _index(verifiers: Sequence[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    trusted: dict[tuple[str, bytes], NoteVerifier] = {}
    if isinstance(verifiers, str | bytes) or not isinstance(verifiers, Iterable):
        raise MalformedKey("trusted keys are a collection of NoteVerifier values")
    for verifier in verifiers:
        if not isinstance(verifier, NoteVerifier):
            raise MalformedKey("trusted keys are NoteVerifier values")
        known = trusted.setdefault((verifier.name, verifier.key_id), verifier)
        if known.public_key != verifier.public_key:
            raise MalformedKey(f"two trusted keys are both {verifier.name}+{verifier.key_id.hex()}")
    return trusted
