"""Envelopes as stored bytes: the wire encoding, so what is kept is exactly what was signed."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from permissions import Envelope, MalformedStatement
from rmaint.envelopes import from_wire, to_wire
from rmaint.v1 import common_pb2


def envelope_blob(envelope: Envelope) -> bytes:
    return to_wire(envelope).SerializeToString(deterministic=True)


def envelope_from_blob(blob: bytes) -> Envelope:
    """Inverse of :func:`envelope_blob`; raise MalformedStatement on damaged bytes."""
    try:
        message = common_pb2.Envelope.FromString(blob)
    except DecodeError as exc:
        raise MalformedStatement("stored envelope is damaged") from exc
    return from_wire(message)
