"""Conversion between the wire Envelope and the trust kernel's Envelope."""

from __future__ import annotations

from permissions import Envelope, MalformedStatement, Signature
from rmaint.v1 import common_pb2

MAX_SIGNATURES = 8


def to_wire(envelope: Envelope) -> common_pb2.Envelope:
    return common_pb2.Envelope(
        payload_type=envelope.payload_type, payload=envelope.payload,
        signatures=[common_pb2.Signature(key_id=s.key_id, sig=s.sig) for s in envelope.signatures],
    )


def from_wire(message: common_pb2.Envelope) -> Envelope:
    """Raise MalformedStatement for an empty or overloaded envelope."""
    if not message.payload_type or not message.payload or not message.signatures:
        raise MalformedStatement("envelope is missing its type, payload or signature")
    if len(message.signatures) > MAX_SIGNATURES:
        raise MalformedStatement("too many signatures")
    return Envelope(
        message.payload_type, bytes(message.payload),
        tuple(Signature(s.key_id, bytes(s.sig)) for s in message.signatures),
    )
