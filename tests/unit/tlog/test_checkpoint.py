"""C2SP checkpoints: the body format, signing, a real log's checkpoint, and growth between two."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

import tlog
from tests.unit.tlog.conftest import VECTORS, leaves

SUMDB = VECTORS["signed_notes"]["sum_golang_org"]
SPEC = VECTORS["signed_notes"]["c2sp_checkpoint"]
ORIGIN = "rmaint.example/controller"
LEAVES = leaves(40)

MakeSigner = Callable[[str], tlog.NoteSigner]


def checkpoint(size: int) -> tlog.Checkpoint:
    return tlog.Checkpoint(ORIGIN, size, tlog.root_hash(LEAVES[:size]))


def test_go_checksum_database_checkpoint_verifies() -> None:
    opened = tlog.open_checkpoint(SUMDB["note"].encode(), [tlog.parse_verifier_key(SUMDB["vkey"])],
                                  origin=SUMDB["origin"])
    assert opened.checkpoint == tlog.Checkpoint(SUMDB["origin"], SUMDB["size"],
                                                base64.b64decode(SUMDB["root_hash"]))
    assert opened.checkpoint.body() == opened.note.text


def test_spec_example_body_round_trips() -> None:
    parsed = tlog.parse_checkpoint(SPEC["body"])
    assert (parsed.origin, parsed.size, parsed.extensions) == (SPEC["origin"], SPEC["size"], ())
    assert parsed.body() == SPEC["body"]


def test_sign_and_open_with_extensions_and_a_cosignature(make_signer: MakeSigner) -> None:
    log, witness = make_signer(ORIGIN), make_signer("rmaint.example/agent/web-1")
    cp = tlog.Checkpoint(ORIGIN, 7, tlog.root_hash(LEAVES[:7]), ("time 1700000000",))
    assert cp.body() == f"{ORIGIN}\n7\n{base64.b64encode(cp.root_hash).decode()}\ntime 1700000000\n"
    signed = tlog.sign_checkpoint(cp, [log])
    assert tlog.open_checkpoint(signed, [log.verifier], origin=ORIGIN).checkpoint == cp
    cosigned = tlog.cosign(tlog.parse_note(signed), [witness]).encode()
    opened = tlog.open_checkpoint(cosigned, [log.verifier, witness.verifier], origin=ORIGIN, quorum=2)
    assert opened.checkpoint == cp and len(opened.note.verified_by) == 2
    with pytest.raises(tlog.WrongOrigin):
        tlog.open_checkpoint(signed, [log.verifier], origin="rmaint.example/other")
    with pytest.raises(tlog.MalformedCheckpoint):
        tlog.open_checkpoint(tlog.sign_note("just text\n", [log]), [log.verifier], origin=ORIGIN)


BAD_BODIES = {
    "two lines": "origin\n5\n",
    "no final newline": f"origin\n5\n{base64.b64encode(bytes(32)).decode()}",
    "empty origin": f"\n5\n{base64.b64encode(bytes(32)).decode()}\n",
    "leading zero": f"origin\n05\n{base64.b64encode(bytes(32)).decode()}\n",
    "sign": f"origin\n+5\n{base64.b64encode(bytes(32)).decode()}\n",
    "unicode digit": f"origin\n\u0665\n{base64.b64encode(bytes(32)).decode()}\n",
    "too large": f"origin\n{1 << 64}\n{base64.b64encode(bytes(32)).decode()}\n",
    "short root": f"origin\n5\n{base64.b64encode(bytes(31)).decode()}\n",
    "root not base64": "origin\n5\nnot base64!\n",
    "empty extension": f"origin\n5\n{base64.b64encode(bytes(32)).decode()}\n\n",
    "control in origin": f"ori\tgin\n5\n{base64.b64encode(bytes(32)).decode()}\n",
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_malformed_bodies_are_rejected(body: str) -> None:
    with pytest.raises(tlog.MalformedCheckpoint):
        tlog.parse_checkpoint(body)


def test_malformed_checkpoints_cannot_be_made() -> None:
    for origin, size, root in (("", 1, bytes(32)), ("a\nb", 1, bytes(32)), ("o", -1, bytes(32)),
                               ("o", True, bytes(32)), ("o", 1, bytes(31))):
        with pytest.raises(tlog.MalformedCheckpoint):
            tlog.Checkpoint(origin, size, root)
    with pytest.raises(tlog.MalformedCheckpoint):
        tlog.Checkpoint("o", 1, bytes(32), ("",))


def test_a_grown_log_extends_its_earlier_checkpoints() -> None:
    for old in range(0, 40, 3):
        for new in range(old, 40, 5):
            tlog.verify_extends(checkpoint(old), checkpoint(new), tlog.consistency_proof(LEAVES[:new], old))


def test_a_rewritten_history_does_not_extend_its_checkpoint() -> None:
    rewritten = [*LEAVES[:10], tlog.leaf_hash(b"edited"), *LEAVES[11:30]]
    proof = tlog.consistency_proof(rewritten, 20)
    new = tlog.Checkpoint(ORIGIN, 30, tlog.root_hash(rewritten))
    with pytest.raises(tlog.ConsistencyNotProven):
        tlog.verify_extends(checkpoint(20), new, proof)
    with pytest.raises(tlog.ConsistencyNotProven):  # truncation: a log never shrinks
        tlog.verify_extends(checkpoint(30), checkpoint(20), ())
    with pytest.raises(tlog.WrongOrigin):
        tlog.verify_extends(checkpoint(5), tlog.Checkpoint("elsewhere", 5, checkpoint(5).root_hash), ())
