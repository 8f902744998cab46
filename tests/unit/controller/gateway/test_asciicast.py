"""asciicast v2 recordings: what is written reads back, byte for byte."""

from __future__ import annotations

import json

import pytest

from controller.gateway.asciicast import (
    CastInvalid,
    Header,
    Recorder,
    output_bytes,
    parse,
    timed,
)

CHUNKS = [b"plain ", "café ".encode(), b"\xe2\x82", b"\xac split", b" \xff\xfe\x00\x1b[0m\r\n"]


def recording() -> bytes:
    recorder = Recorder(Header(80, 24, 1_800_000_000, "xterm-256color"), started=100.0)
    for i, chunk in enumerate(CHUNKS):
        recorder.output(chunk, 100.0 + i * 0.5)
    recorder.resize(132, 43, 103.0)
    return recorder.dumps()


def test_header_is_asciicast_v2() -> None:
    head = json.loads(recording().splitlines()[0])
    assert head == {"version": 2, "width": 80, "height": 24, "timestamp": 1_800_000_000,
                    "env": {"TERM": "xterm-256color"}}


def test_every_line_is_json_and_events_are_timed() -> None:
    lines = recording().decode("ascii").splitlines()
    events = [json.loads(line) for line in lines[1:]]
    assert [e[0] for e in events] == [0.0, 0.5, 1.0, 1.5, 2.0, 3.0]
    assert [e[1] for e in events] == ["o"] * 5 + ["r"]
    assert events[-1][2] == "132x43"


def test_output_reads_back_as_the_exact_bytes() -> None:
    header, events = parse(recording())
    assert header == Header(80, 24, 1_800_000_000, "xterm-256color")
    assert output_bytes(events) == b"".join(CHUNKS)


def test_timed_gives_the_pauses_scaled_by_speed() -> None:
    _, events = parse(recording())
    assert [wait for wait, _ in timed(events, speed=2.0)] == [0.0, 0.25, 0.25, 0.25, 0.25, 0.5]


@pytest.mark.parametrize("data", [
    b"", b"not json\n", b'{"version": 1, "width": 80, "height": 24}\n',
    b'{"version": 2, "height": 24}\n',
    b'{"version": 2, "width": 80, "height": 24}\n[1, "o"]\n',
    b'{"version": 2, "width": 80, "height": 24}\n["x", "o", "a"]\n',
])
def test_what_is_not_a_recording_is_refused(data: bytes) -> None:
    with pytest.raises(CastInvalid):
        parse(data)


def test_a_recording_takes_nothing_past_its_limit() -> None:
    recorder = Recorder(Header(80, 24, 1_800_000_000), started=100.0, limit=200)
    assert recorder.output(b"a" * 60, 100.5) and recorder.resize(100, 30, 101.0)
    assert not recorder.output(b"b" * 100, 102.0)  # it would pass 200 bytes as stored
    assert recorder.output(b"c", 102.5)  # a smaller event still fits
    data = recorder.dumps()
    assert len(data) <= 200 and b"b" not in data
    _, events = parse(data)
    assert [e.code for e in events] == ["o", "r", "o"]
