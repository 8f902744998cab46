"""Evidence: what an auditor needs to check events offline, and its file form.

One JSON object (UTF-8), the same for a case's bundle, a session, the full log and a single
event's proof::

    format        "rmaint-audit-evidence/1"
    origin        the log's origin (checkpoints must name it)
    scope         {"case": C} | {"session": S} | {"full": true} | {"event": N}
    checkpoint    the latest signed checkpoint (signed-note text) the proofs lead to
    records       [{"index", "record" (base64 canonical bytes), "proof" [base64 hashes]}]
    consistency   [{"checkpoint" (an older signed note), "proof" [base64]}], each to checkpoint
    cosigned      [{"checkpoint", "proof"}]: checkpoints of this log with agents' cosignatures
                  (each agent's latest, as a signed note with the agent's signature line added),
                  each with the consistency proof to checkpoint; absent in older files
    envelopes     {sha256 hex: stored envelope text} for the digests the records carry
    blobs         [sha256 hex] of large contents the records reference (by hash only)

Pure: parsing is total and raises BadEvidence with what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from controller.audit.errors import BadEvidence

FORMAT = "rmaint-audit-evidence/1"
SCOPES = ("case", "session", "full", "event")


@dataclass(frozen=True)
class ProvenRecord:
    """A leaf's canonical bytes and its inclusion proof in the evidence's checkpoint."""

    index: int
    record: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class Consistency:
    """An older signed checkpoint and the proof that the evidence's checkpoint extends it."""

    checkpoint: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class Evidence:
    origin: str
    scope: dict[str, Any]
    checkpoint: bytes
    records: tuple[ProvenRecord, ...]
    consistency: tuple[Consistency, ...] = ()
    envelopes: dict[str, str] = field(default_factory=dict)
    blobs: tuple[str, ...] = ()
    cosigned: tuple[Consistency, ...] = ()


def to_json(evidence: Evidence) -> bytes:
    obj = {
        "format": FORMAT, "origin": evidence.origin, "scope": evidence.scope,
        "checkpoint": evidence.checkpoint.decode(),
        "records": [{"index": r.index, "record": _b64(r.record),
                     "proof": [_b64(p) for p in r.proof]} for r in evidence.records],
        "consistency": [{"checkpoint": c.checkpoint.decode(),
                         "proof": [_b64(p) for p in c.proof]} for c in evidence.consistency],
        "envelopes": evidence.envelopes, "blobs": list(evidence.blobs),
        "cosigned": [{"checkpoint": c.checkpoint.decode(),
                      "proof": [_b64(p) for p in c.proof]} for c in evidence.cosigned],
    }
    return json.dumps(obj, sort_keys=True, indent=1).encode() + b"\n"


def from_json(data: bytes) -> Evidence:
    """Parse an evidence file; BadEvidence naming the first thing that is wrong."""
    try:
        obj = json.loads(data.decode("utf-8"))
        return _evidence(obj)
    except BadEvidence:
        raise
    except json.JSONDecodeError as exc:
        raise BadEvidence(f"not an evidence file: not JSON ({exc.msg} at line {exc.lineno}, "
                          f"column {exc.colno})") from exc
    except UnicodeDecodeError as exc:
        raise BadEvidence("not an evidence file: not UTF-8 text") from exc
    except RecursionError as exc:
        raise BadEvidence("not an evidence file: nested too deeply") from exc
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as exc:
        raise BadEvidence(f"not an evidence file: {type(exc).__name__}: {exc}") from exc


def _evidence(obj: Any) -> Evidence:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise BadEvidence(f"not an evidence file (format is not {FORMAT})")
    scope = obj["scope"]
    problem = scope_problem(scope)
    if problem is not None:
        raise BadEvidence(problem)
    records = tuple(ProvenRecord(_int(r["index"]), _unb64(r["record"]),
                                 tuple(_unb64(p) for p in r["proof"])) for r in obj["records"])
    consistency = tuple(Consistency(_str(c["checkpoint"]).encode(),
                                    tuple(_unb64(p) for p in c["proof"]))
                        for c in obj["consistency"])
    cosigned = tuple(Consistency(_str(c["checkpoint"]).encode(),
                                 tuple(_unb64(p) for p in c["proof"]))
                     for c in obj.get("cosigned", []))
    envelopes = obj["envelopes"]
    if not isinstance(envelopes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in envelopes.items()):
        raise BadEvidence("envelopes map hex digests to envelope text")
    return Evidence(_str(obj["origin"]), scope, _str(obj["checkpoint"]).encode(), records,
                    consistency, envelopes, tuple(_str(b) for b in obj["blobs"]), cosigned)


def scope_problem(scope: object) -> str | None:
    """What is wrong with ``scope``, if anything: it names one case, one session or one
    event, or is exactly ``{"full": true}``. The scope is not signed and decides which
    checks run, so nothing else may pass for one (``{"full": 1}`` would skip them)."""
    if not isinstance(scope, dict) or len(scope) != 1 or next(iter(scope)) not in SCOPES:
        return f"scope names one of {', '.join(SCOPES)}"
    (name, value), = scope.items()
    if name in ("case", "session") and not (isinstance(value, str) and value):
        return f"the scope's {name} is not a {name} id: {value!r}"
    if name == "full" and value is not True:
        return f"the scope's full is not true: {value!r}"
    if name == "event" and (type(value) is not int or value < 0):
        return f"the scope's event is not a leaf index: {value!r}"
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object) -> bytes:
    return base64.b64decode(_str(text), validate=True)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise BadEvidence(f"expected a string, found {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if type(value) is not int or value < 0:
        raise BadEvidence(f"expected a leaf index, found {value!r}")
    return value
