"""Canonical event records: one byte form per event, anything else refused."""

from __future__ import annotations

import json

import pytest

from controller.audit.errors import BadRecord
from controller.audit.records import OPENED, OPERATION, Event, Link, decode, encode


def _event(**changes: object) -> Event:
    fields: dict[str, object] = {"kind": OPERATION, "at": 1.5, "case": "C-0001",
                                 "actor": "alice", "session": "S-1",
                                 "details": {"seq": 1, "op": "diag.system", "ü": "ß"},
                                 "digests": {"operation_envelope": "00" * 32},
                                 "prev": Link(3, b"\x01" * 32)}
    fields.update(changes)
    return Event(**fields)  # type: ignore[arg-type]  # built from a dict on purpose


def test_encoding_is_sorted_compact_utf8_and_round_trips() -> None:
    data = encode(_event())
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode()
    assert "ß".encode() in data
    assert decode(data) == _event()


def test_the_same_event_always_has_the_same_bytes() -> None:
    reordered = _event(details={"ü": "ß", "op": "diag.system", "seq": 1})
    assert encode(reordered) == encode(_event())


@pytest.mark.parametrize("mangle", [
    lambda d: d.replace(b'"actor":"alice",', b'"actor": "alice",'),  # whitespace
    lambda d: d.replace(b'"v":1', b'"v":2'),
    lambda d: d.replace(b'"cosig":null,', b""),
    lambda d: d[:-1] + b',"extra":1}',
    lambda d: d + b"\n",
    lambda d: b"\xff" + d,
    lambda d: d.replace(b'"at":1.5', b'"at":1.50'),
])
def test_anything_but_the_canonical_form_is_refused(mangle: object) -> None:
    with pytest.raises(BadRecord):
        decode(mangle(encode(_event())))  # type: ignore[operator]


@pytest.mark.parametrize("event", [
    _event(kind="session.nonsense"),
    _event(at=float("nan")),
    _event(session=None),
    _event(kind="consent.requested"),  # consent events name no session
    _event(details={"x": object()}),
    _event(prev=Link(1, b"short")),
])
def test_events_json_cannot_carry_exactly_are_refused(event: Event) -> None:
    with pytest.raises(BadRecord):
        encode(event)


def test_opened_records_carry_no_link_and_consent_records_no_session() -> None:
    opened = decode(encode(Event(OPENED, 1.0, "C-1", "alice", "S-1")))
    assert opened.prev is None and opened.session == "S-1"
    consent = decode(encode(Event("consent.approved", 1.0, "C-1", "approver:k1")))
    assert consent.session is None
