"""How values that have no column type are kept: envelopes and scope lists.

An envelope is JSON text with base64 payload and signatures, so the exact signed bytes
come back unchanged; scopes are a space-separated, sorted list.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

from permissions import Envelope, Signature


def envelope_text(envelope: Envelope) -> str:
    return json.dumps({
        "payload_type": envelope.payload_type,
        "payload": base64.b64encode(envelope.payload).decode(),
        "signatures": [{"key_id": s.key_id, "sig": base64.b64encode(s.sig).decode()}
                       for s in envelope.signatures],
    }, sort_keys=True, separators=(",", ":"))


def envelope_of(text: str) -> Envelope:
    """Inverse of :func:`envelope_text` for text this module wrote."""
    obj = json.loads(text)
    return Envelope(
        obj["payload_type"], base64.b64decode(obj["payload"]),
        tuple(Signature(s["key_id"], base64.b64decode(s["sig"])) for s in obj["signatures"]),
    )


def scopes_text(scopes: Iterable[str]) -> str:
    return " ".join(sorted(set(scopes)))


def scopes_of(text: str) -> tuple[str, ...]:
    return tuple(text.split())
