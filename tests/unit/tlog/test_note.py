"""C2SP signed notes: known answers, round trips, cosignatures, and every way a note is refused."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import tlog
from tests.unit.tlog.conftest import VECTORS, flip

GO = VECTORS["signed_notes"]["go_sumdb"]
SPEC = VECTORS["signed_notes"]["c2sp_example"]
PETER = tlog.parse_verifier_key(GO["peter_vkey"])
ENOCH = tlog.parse_verifier_key(GO["enoch_vkey"])
GO_NOTE = (GO["text"] + "\n" + GO["peter_sig_line"]).encode()

MakeSigner = Callable[[str], tlog.NoteSigner]


def go_signer() -> tlog.NoteSigner:
    # PRIVATE+KEY+<name>+<key ID>+base64(0x01 ‖ Ed25519 seed), as golang.org/x/mod/sumdb/note writes it.
    _, _, name, key, material = GO["signer_key"].split("+", 4)
    raw = base64.b64decode(material)
    assert raw[0] == tlog.ED25519 and key == PETER.key_id.hex()
    return tlog.NoteSigner(name, ed25519.Ed25519PrivateKey.from_private_bytes(raw[1:]))


def test_go_reference_note_is_reproduced_byte_for_byte() -> None:
    signer = go_signer()
    assert signer.verifier == PETER
    assert signer.verifier.vkey() == GO["peter_vkey"]
    assert tlog.sign_note(GO["text"], [signer]) == GO_NOTE


def test_go_reference_note_with_a_cosignature_verifies() -> None:
    data = (GO["text"] + "\n" + GO["peter_sig_line"] + GO["enoch_sig_line"]).encode()
    both = tlog.open_note(data, [PETER, ENOCH], quorum=2)
    assert both.text == GO["text"] and both.verified_by == (PETER, ENOCH)
    only_peter = tlog.open_note(data, [PETER])
    assert only_peter.verified_by == (PETER,) and len(only_peter.note.signatures) == 2
    with pytest.raises(tlog.UnverifiedNote):
        tlog.open_note(data, [PETER], quorum=2)


def test_c2sp_example_verifies() -> None:
    verifier = tlog.parse_verifier_key(SPEC["vkey"])
    assert verifier.key_id.hex() == "530d903a" and verifier.vkey() == SPEC["vkey"]
    assert tlog.open_note(SPEC["note"].encode(), [verifier]).text == "This is an example message.\n"


def test_round_trip_with_cosignatures(make_signer: MakeSigner) -> None:
    log, witness = make_signer("log.example/controller"), make_signer("log.example/agent")
    text = "an audit record\n\nwith an empty line inside\n"
    data = tlog.sign_note(text, [log])
    note = tlog.open_note(data, [log.verifier]).note
    cosigned = tlog.cosign(note, [witness]).encode()
    assert cosigned.startswith(data)
    opened = tlog.open_note(cosigned, [log.verifier, witness.verifier], quorum=2)
    assert opened.text == text and opened.verified_by == (log.verifier, witness.verifier)
    assert tlog.parse_note(cosigned) == opened.note
    again = tlog.cosign(opened.note, [witness]).encode()
    assert again == cosigned  # cosigning twice replaces the signature instead of adding one


def test_forged_signature_is_rejected(make_signer: MakeSigner) -> None:
    log = make_signer("log.example/controller")
    note = tlog.parse_note(tlog.sign_note("size 5\n", [log]))
    sig = note.signatures[0]
    forged = tlog.Note(note.text, (tlog.NoteSignature(sig.name, sig.key_id, bytes(64)),))
    with pytest.raises(tlog.BadNoteSignature):
        tlog.open_note(forged.encode(), [log.verifier])
    for bit in (0, 100, 500):
        flipped = tlog.Note(note.text, (tlog.NoteSignature(sig.name, sig.key_id, flip(sig.signature, bit)),))
        with pytest.raises(tlog.BadNoteSignature):
            tlog.open_note(flipped.encode(), [log.verifier])
    with pytest.raises(tlog.BadNoteSignature):  # truncated
        tlog.open_note(tlog.Note(note.text, (tlog.NoteSignature(sig.name, sig.key_id, b"x"),)).encode(),
                       [log.verifier])
    impostor = make_signer("log.example/impostor")
    stolen_name = tlog.NoteSigner("log.example/controller", impostor.private_key)
    with pytest.raises(tlog.UnverifiedNote):  # another key under the trusted name: its key ID differs
        tlog.open_note(tlog.sign_note("size 5\n", [stolen_name]), [log.verifier])


def test_a_note_under_another_key_name_is_not_trusted(make_signer: MakeSigner) -> None:
    log = make_signer("log.example/controller")
    pinned_elsewhere = tlog.NoteVerifier("log.example/other", log.verifier.public_key)
    with pytest.raises(tlog.UnverifiedNote):
        tlog.open_note(tlog.sign_note("size 5\n", [log]), [pinned_elsewhere])
    renamed = tlog.sign_note("size 5\n", [log]).replace(b"log.example/controller", b"log.example/other")
    with pytest.raises(tlog.UnverifiedNote):  # same key, but the key ID binds the name
        tlog.open_note(renamed, [pinned_elsewhere])


def test_a_modified_body_is_rejected(make_signer: MakeSigner) -> None:
    log = make_signer("log.example/controller")
    data = tlog.sign_note("origin\n5\nroot\n", [log])
    with pytest.raises(tlog.BadNoteSignature):
        tlog.open_note(data.replace(b"\n5\n", b"\n6\n"), [log.verifier])
    with pytest.raises(tlog.BadNoteSignature):
        tlog.open_note(b"extra line\n" + data, [log.verifier])


MALFORMED = {
    "no signatures": GO["text"].encode(),
    "blank line and nothing after": (GO["text"] + "\n").encode(),
    "missing final newline": GO_NOTE[:-1],
    "no blank line before signatures": GO["text"].encode()[:-1] + b"\n" + GO["peter_sig_line"].encode(),
    "control character": b"\x01" + GO_NOTE,
    "not UTF-8": b"\xff" + GO_NOTE,
    "CRLF line ends": GO_NOTE.replace(b"\n", b"\r\n"),
    "space in the key name": GO_NOTE.replace(b"PeterNeumann", b"Peter Neumann"),
    "plus in the key name": GO_NOTE.replace(b"PeterNeumann", b"Peter+Neumann"),
    "a line that is no signature": GO_NOTE + b"Unexpected line.\n",
    "hyphen for the em dash": GO_NOTE.replace("\u2014 ".encode(), b"- "),
    "base64 padding dropped": GO_NOTE.replace(b"AM=\n", b"AM\n"),
    "non-canonical base64": GO_NOTE.replace(b"AM=\n", b"AN=\n"),
    "URL-safe base64": GO_NOTE.replace(b"x08go/ZJ", b"x08go_ZJ"),
    "key ID without signature": (GO["text"] + "\n\u2014 PeterNeumann AAAAAA==\n").encode(),
    "too many signatures": (GO["text"] + "\n" + GO["peter_sig_line"] * (tlog.MAX_SIGNATURES + 1)).encode(),
    "not bytes": GO_NOTE.decode(),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_notes_are_rejected(data: bytes) -> None:
    with pytest.raises(tlog.MalformedNote):
        tlog.open_note(data, [PETER])


def test_unknown_signatures_are_kept_but_do_not_count() -> None:
    with pytest.raises(tlog.UnverifiedNote):
        tlog.open_note(GO_NOTE, [ENOCH])
    with pytest.raises(tlog.UnverifiedNote):
        tlog.open_note(GO_NOTE, [])
    opened = tlog.open_note(GO_NOTE + GO["enoch_sig_line"].encode(), [PETER])
    assert [sig.name for sig in opened.note.signatures] == ["PeterNeumann", "EnochRoot"]


def test_bad_trust_settings_are_refused() -> None:
    impostor = tlog.NoteVerifier(PETER.name, bytes(32))
    with pytest.raises(tlog.UnverifiedNote):
        tlog.open_note(GO_NOTE, [PETER], quorum=0)
    with pytest.raises(tlog.MalformedKey):
        tlog.open_note(GO_NOTE, "PeterNeumann")  # type: ignore[arg-type]
    with pytest.raises(tlog.MalformedKey):
        tlog.open_note(GO_NOTE, [PETER, object()])  # type: ignore[list-item]
    object.__setattr__(impostor, "key_id", PETER.key_id)  # a forced key ID collision
    with pytest.raises(tlog.MalformedKey):
        tlog.open_note(GO_NOTE, [PETER, impostor])


def test_signing_refuses_what_cannot_be_a_note(make_signer: MakeSigner) -> None:
    log = make_signer("log.example/controller")
    for text in ("no final newline", "tab\there\n", "\ud800\n"):
        with pytest.raises(tlog.MalformedNote):
            tlog.sign_note(text, [log])
    with pytest.raises(tlog.MalformedNote):
        tlog.sign_note("unsigned\n", [])
    with pytest.raises(tlog.MalformedKey):
        make_signer("has space")


@pytest.mark.parametrize("vkey", [
    GO["peter_vkey"][:-1],
    GO["peter_vkey"].replace("c74f20a3", "c74f20a4"),
    GO["peter_vkey"].replace("c74f20a3", "C74F20A3"),
    GO["peter_vkey"].replace("+ARpc", "+AhRpc"),
    "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # from note_test.go
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",          # unknown algorithm
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "",
])
def test_malformed_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(tlog.MalformedKey):
        tlog.parse_verifier_key(vkey)


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    assert tlog.key_id(PETER.name, PETER.public_key).hex() == "c74f20a3"
    assert tlog.key_id(ENOCH.name, ENOCH.public_key).hex() == "af0cfe78"


def test_one_key_under_two_names_counts_once(make_signer: MakeSigner) -> None:
    log = make_signer("log.example/controller")
    alias = tlog.NoteSigner("log.example/alias", log.private_key)
    data = tlog.sign_note("size 5\n", [log, alias])
    assert len(tlog.open_note(data, [log.verifier, alias.verifier]).verified_by) == 1
    with pytest.raises(tlog.UnverifiedNote):
        tlog.open_note(data, [log.verifier, alias.verifier], quorum=2)
