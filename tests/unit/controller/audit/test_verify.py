"""Verifying evidence offline: every attack is detected and pinpointed."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

import tlog
from controller.audit.chains import INCOMPLETE
from controller.audit.errors import BadEvidence
from controller.audit.evidence import Consistency, Evidence, ProvenRecord, from_json, to_json
from controller.audit.records import Event, decode, encode, sha256_hex
from controller.audit.verify import FAILED, VERIFIED, verify_evidence
from controller.client.audit import check, scope_asked
from tests.unit.controller.audit._log import ORIGIN, MemoryLog, consent, session, signer


@pytest.fixture
def key() -> tlog.NoteSigner:
    return signer()


@pytest.fixture
def log() -> MemoryLog:
    built = MemoryLog()
    consent(built)
    session(built, "S-1", ops=3)
    consent(built, "approved")
    session(built, "S-2", ops=2)
    return built


def _replace(evidence: Evidence, index: int, record: bytes) -> Evidence:
    records = tuple(dataclasses.replace(r, record=record) if r.index == index else r
                    for r in evidence.records)
    return dataclasses.replace(evidence, records=records)


def test_an_untouched_full_log_verifies(log: MemoryLog, key: tlog.NoteSigner) -> None:
    report = verify_evidence(log.evidence(key, {"full": True}), key.verifier)
    assert report.status == VERIFIED and report.faults == ()
    assert (report.size, report.records, report.sessions) == (len(log.records),) * 2 + (2,)
    assert report.root_hash == tlog.root_hash(log.hashes())


def test_a_modified_record_is_pinpointed(log: MemoryLog, key: tlog.NoteSigner) -> None:
    event = decode(log.records[4])
    forged = encode(dataclasses.replace(event, details={**event.details, "outcome": "denied"}))
    report = verify_evidence(_replace(log.evidence(key, {"full": True}), 4, forged),
                             key.verifier)
    assert report.status == FAILED
    assert (report.faults[0].index, report.faults[0].kind) == (4, event.kind)
    assert "not leaf 4 of the signed tree" in report.faults[0].what


def test_a_deleted_record_is_pinpointed(log: MemoryLog, key: tlog.NoteSigner) -> None:
    evidence = log.evidence(key, {"full": True}, [i for i in range(len(log.records)) if i != 5])
    report = verify_evidence(evidence, key.verifier)
    assert report.status == FAILED and report.faults[0].index == 5
    assert "missing" in report.faults[0].what


def test_two_swapped_records_are_pinpointed(log: MemoryLog, key: tlog.NoteSigner) -> None:
    evidence = log.evidence(key, {"full": True})
    swapped = _replace(_replace(evidence, 3, log.records[6]), 6, log.records[3])
    report = verify_evidence(swapped, key.verifier)
    assert report.status == FAILED
    assert report.faults[0].index == 3
    assert {3, 6} <= {f.index for f in report.faults if "not leaf" in f.what}


def test_a_truncated_log_is_detected(log: MemoryLog, key: tlog.NoteSigner) -> None:
    evidence = log.evidence(key, {"full": True}, list(range(len(log.records) - 3)))
    report = verify_evidence(evidence, key.verifier)
    assert report.status == FAILED
    assert report.faults[0].index == len(log.records) - 3


def test_a_checkpoint_signed_by_another_key_is_refused(log: MemoryLog,
                                                       key: tlog.NoteSigner) -> None:
    other = log.evidence(signer(), {"full": True})
    report = verify_evidence(other, key.verifier)
    assert report.status == FAILED and report.faults[0].kind == "checkpoint"


def test_a_forged_signature_is_refused(log: MemoryLog, key: tlog.NoteSigner) -> None:
    evidence = log.evidence(key, {"full": True})
    text, _, sig = evidence.checkpoint.decode().rpartition(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    forged = f"{text} {base64.b64encode(bytes(raw)).decode()}\n".encode()
    report = verify_evidence(dataclasses.replace(evidence, checkpoint=forged), key.verifier)
    assert report.status == FAILED and "not signed by the pinned log key" in report.faults[0].what


def test_a_checkpoint_for_a_rewritten_history_is_detected(log: MemoryLog,
                                                          key: tlog.NoteSigner) -> None:
    kept = log.checkpoint(key)
    kept_size = len(log.records)
    rewritten = MemoryLog()  # the same story without S-1's second operation
    rewritten.records = log.records[:4] + log.records[6:]
    session(rewritten, "S-3")
    evidence = rewritten.evidence(key, {"full": True}, since=kept, since_size=kept_size - 2)
    report = verify_evidence(evidence, key.verifier)
    assert report.status == FAILED
    assert any("history rewritten" in f.what for f in report.faults)


def test_the_log_only_grew_since_a_kept_checkpoint(log: MemoryLog, key: tlog.NoteSigner) -> None:
    kept, kept_size = log.checkpoint(key), len(log.records)
    session(log, "S-3")
    evidence = log.evidence(key, {"case": "C-0001"}, since=kept, since_size=kept_size)
    report = verify_evidence(evidence, key.verifier)
    assert report.status == VERIFIED and report.consistency == 1


def test_a_session_with_an_event_removed_is_pinpointed(log: MemoryLog,
                                                       key: tlog.NoteSigner) -> None:
    s1 = [i for i, r in enumerate(log.records) if decode(r).session == "S-1"]
    evidence = log.evidence(key, {"session": "S-1"}, [i for i in s1 if i != s1[2]])
    report = verify_evidence(evidence, key.verifier)
    assert report.status == FAILED and report.faults[0].index == s1[3]


def test_a_single_event_proof_verifies_without_its_session(log: MemoryLog,
                                                           key: tlog.NoteSigner) -> None:
    report = verify_evidence(log.evidence(key, {"event": 5}, [5]), key.verifier)
    assert report.status == VERIFIED and report.records == 1


def test_a_case_relabelled_as_one_event_does_not_skip_the_session_checks(
        log: MemoryLog, key: tlog.NoteSigner) -> None:
    # The scope is not signed: a case's evidence with a session cut short, relabelled as an
    # event's proof, must fail, whatever event it names (0 included).
    s1 = [i for i, r in enumerate(log.records) if decode(r).session == "S-1"]
    cut = [i for i in range(len(log.records)) if i not in s1[2:]]
    for scope in ({"event": 0}, {"event": cut[0]}, {"event": "5"}):
        report = verify_evidence(log.evidence(key, scope, cut), key.verifier)
        assert report.status == FAILED
        assert any(f.kind == "scope" for f in report.faults)
    wrong = verify_evidence(log.evidence(key, {"event": 4}, [5]), key.verifier)
    assert wrong.status == FAILED  # one record, but not the one named


def test_a_case_with_a_consent_record_removed_fails(log: MemoryLog,
                                                    key: tlog.NoteSigner) -> None:
    # The fixture's log: request (0), S-1, approval, S-2: without the approval, S-2's
    # opening links to a leaf the case's evidence lacks.
    approval = next(i for i, r in enumerate(log.records)
                    if decode(r).kind == "consent.approved")
    kept = [i for i in range(len(log.records)) if i != approval]
    report = verify_evidence(log.evidence(key, {"case": "C-0001"}, kept), key.verifier)
    assert report.status == FAILED and report.faults[0].index == approval + 1
    assert verify_evidence(log.evidence(key, {"case": "C-0001"}), key.verifier).status \
        == VERIFIED


def test_a_session_s_evidence_verifies_though_its_opening_links_into_its_case(
        log: MemoryLog, key: tlog.NoteSigner) -> None:
    s2 = [i for i, r in enumerate(log.records) if decode(r).session == "S-2"]
    assert decode(log.records[s2[0]]).prev is not None  # to the approval, not in the evidence
    report = verify_evidence(log.evidence(key, {"session": "S-2"}, s2), key.verifier)
    assert report.status == VERIFIED and report.sessions == 1


@pytest.mark.parametrize("scope", [{"session": "S-1"}, {"case": "C-0002"}])
def test_records_outside_the_scope_fail(log: MemoryLog, key: tlog.NoteSigner,
                                        scope: dict[str, str]) -> None:
    # The scope is not signed: a case's evidence relabelled as one session's must not skip
    # the case's checks, nor pass for another case.
    report = verify_evidence(log.evidence(key, scope), key.verifier)
    assert report.status == FAILED
    assert any("but this record is of" in f.what for f in report.faults)


def test_an_envelope_a_record_names_must_be_in_the_evidence(log: MemoryLog,
                                                            key: tlog.NoteSigner) -> None:
    evidence = log.evidence(key, {"case": "C-0001"})
    dropped = sorted(evidence.envelopes)[0]
    envelopes = {d: t for d, t in evidence.envelopes.items() if d != dropped}
    report = verify_evidence(dataclasses.replace(evidence, envelopes=envelopes), key.verifier)
    assert report.status == INCOMPLETE
    assert [f.what for f in report.faults] == [
        f"the receipt {dropped[:16]}… this record names is not in the evidence"]


def test_an_edited_bundle_file_is_detected(log: MemoryLog, key: tlog.NoteSigner) -> None:
    envelope = '{"payload":"eA==","payload_type":"t","signatures":[]}'
    evidence = log.evidence(key, {"case": "C-0001"})
    evidence = dataclasses.replace(evidence, envelopes={**evidence.envelopes,
                                                        sha256_hex(envelope): envelope})
    data = to_json(evidence)
    unreferenced = verify_evidence(from_json(data), key.verifier)
    assert unreferenced.status == INCOMPLETE
    assert [f.what for f in unreferenced.faults] == [
        f"envelope {sha256_hex(envelope)[:16]}… is referenced by no verified record"]
    obj = json.loads(data)
    record = json.loads(base64.b64decode(obj["records"][2]["record"]))
    record["actor"] = "mallory"
    obj["records"][2]["record"] = base64.b64encode(
        json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).decode()
    obj["envelopes"] = {sha256_hex(envelope): envelope.replace("eA==", "eQ==")}
    report = verify_evidence(from_json(json.dumps(obj).encode()), key.verifier)
    assert report.status == FAILED and report.faults[0].index == 2
    assert any(f.kind == "envelope" and "edited" in f.what for f in report.faults)


def test_referenced_envelopes_verify(key: tlog.NoteSigner) -> None:
    log = MemoryLog()
    envelope = '{"payload":"eA==","payload_type":"t","signatures":[]}'
    log.append(Event("consent.approved", 1.0, "C-1", "approver",
                     digests={"envelope": sha256_hex(envelope)}))
    evidence = dataclasses.replace(log.evidence(key, {"case": "C-1"}),
                                   envelopes={sha256_hex(envelope): envelope})
    assert verify_evidence(evidence, key.verifier).status == VERIFIED


# The scope is not signed and decides which checks run: only exact scopes pass for one.
BAD_SCOPES = [{"full": 1}, {"full": "yes"}, {"full": False}, {"case": ""}, {"case": 5},
              {"session": None}, {"event": True}, {"event": -1}, {"event": "5"}]


@pytest.mark.parametrize("scope", BAD_SCOPES, ids=str)
def test_a_scope_that_only_looks_like_one_is_refused(log: MemoryLog, key: tlog.NoteSigner,
                                                     scope: dict[str, object]) -> None:
    # e.g. a case's evidence with its approval removed, relabelled {"full": 1}
    approval = next(i for i, r in enumerate(log.records)
                    if decode(r).kind == "consent.approved")
    kept = [i for i in range(len(log.records)) if i != approval]
    evidence = log.evidence(key, scope, kept)
    with pytest.raises(BadEvidence, match="scope"):
        from_json(to_json(evidence))
    report = verify_evidence(evidence, key.verifier)
    assert report.status == FAILED
    assert any(f.kind == "scope" and "the scope's" in f.what for f in report.faults)


def test_evidence_of_another_scope_than_asked_for_is_refused(log: MemoryLog,
                                                             key: tlog.NoteSigner) -> None:
    s1 = [i for i, r in enumerate(log.records) if decode(r).session == "S-1"]
    data = to_json(log.evidence(key, {"session": "S-1"}, s1))
    assert check(data, key.verifier, asked={"session": "S-1"})[1].status == VERIFIED
    with pytest.raises(BadEvidence, match=r"not of the \{'case': 'C-0001'\} asked for"):
        check(data, key.verifier, asked=scope_asked(case="C-0001"))


@pytest.mark.parametrize("data", [b"", b"[]", b'{"format":"other"}', b"\xff",
                                  b'{"format":"rmaint-audit-evidence/1","scope":{"x":1}}'])
def test_files_that_are_not_evidence_are_refused(data: bytes) -> None:
    with pytest.raises(BadEvidence):
        from_json(data)


@pytest.mark.parametrize(("data", "said"), [
    (b"# README\n", "not an evidence file: not JSON (Expecting value at line 1, column 1)"),
    (b"\xff", "not an evidence file: not UTF-8 text"),
    (b"[" * 100_000 + b"]" * 100_000, "not an evidence file: nested too deeply"),
])
def test_what_is_not_evidence_is_said_plainly(data: bytes, said: str) -> None:
    with pytest.raises(BadEvidence) as refused:
        from_json(data)
    assert str(refused.value) == said


def test_duplicate_indices_are_a_fault(log: MemoryLog, key: tlog.NoteSigner) -> None:
    evidence = log.evidence(key, {"event": 1}, [1])
    extra = ProvenRecord(1, log.records[2], evidence.records[0].proof)
    doubled = dataclasses.replace(evidence, records=(*evidence.records, extra))
    assert verify_evidence(doubled, key.verifier).status == FAILED


def test_a_cosignature_counts_only_if_it_covers_every_record(log: MemoryLog,
                                                             key: tlog.NoteSigner) -> None:
    agent = signer("web-1")
    size = len(log.records)
    cosigned = tlog.sign_checkpoint(
        tlog.Checkpoint(ORIGIN, size, tlog.root_hash(log.hashes())), [key, agent])

    def with_cosignature() -> Evidence:
        evidence = log.evidence(key, {"full": True})
        proof = tlog.consistency_proof(log.hashes(), size)
        return dataclasses.replace(evidence, cosigned=(Consistency(cosigned, proof),))

    covered = verify_evidence(with_cosignature(), key.verifier, [agent.verifier])
    assert covered.status == VERIFIED and covered.cosigned_by == (agent.verifier.vkey(),)
    consent(log, "denied")  # a record the agent has not witnessed
    beyond = verify_evidence(with_cosignature(), key.verifier, [agent.verifier])
    assert beyond.status == INCOMPLETE and beyond.cosigned_by == ()
