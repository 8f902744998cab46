"""Readable units in tables; JSON that keeps numbers numbers."""

from __future__ import annotations

import datetime as dt

import pytest

from controller.cli import _diag_render as render
from controller.cli import _output as out
from rmaint.v1 import common_pb2
from rmaint.v1 import controller_pb2 as pb


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (12, "12s"), (250, "4m 10s"), (7500, "2h 5m"), (3600, "1h"),
    (3 * 86400 + 4 * 3600 + 59, "3d 4h"), (86400 + 59, "1d"),
])
def test_span(seconds: int, text: str) -> None:
    assert out.span(seconds) == text


@pytest.mark.parametrize(("count", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 2**20, "3.0 MiB"),
    (16 * 2**30, "16.0 GiB"), (5 * 2**40, "5.0 TiB"), (2**60, "1024.0 PiB"),
])
def test_size(count: int, text: str) -> None:
    assert out.size(count) == text


def test_when_is_local_iso_and_never_is_a_dash() -> None:
    assert out.when(0) == "-"
    stamp = out.when(1_700_000_000)
    assert dt.datetime.fromisoformat(stamp).timestamp() == 1_700_000_000


@pytest.mark.parametrize(("key", "value", "text"), [
    ("memory.total", 2 * 2**30, "2.0 GiB"),
    ("swap_used", 0, "0 B"),
    ("memory_rss", 2**20, "1.0 MiB"),
    ("cpu_percent", 12.345, "12.3 %"),
    ("uptime_seconds", 90061, "1d 1h"),
    ("boot_time", 1_700_000_000, out.when(1_700_000_000)),
    ("pid", 4242, "4242"),
    ("cpu_count_logical", 8, "8"),
    ("load_average", [1.0, 0.5, 0.25], "1.00 0.50 0.25"),
    ("status", "running", "running"),
    ("missing", None, "-"),
    ("ok", True, "yes"),
])
def test_cells_by_field_name(key: str, value: object, text: str) -> None:
    assert render.cell(key, value) == text


def test_rows_are_found_next_to_other_fields() -> None:
    rows, other = render.split_rows({"by": "cpu", "processes": [{"pid": 1}]})
    assert rows == [{"pid": 1}] and other == {"by": "cpu"}
    assert render.split_rows([{"a": 1}]) == ([{"a": 1}], {})
    assert render.split_rows({"filesystems": []}) == ([], {})


def test_message_data_keeps_ints_and_shows_envelope_statements() -> None:
    envelope = common_pb2.Envelope(payload_type="t", payload=b'{"a":1}',
                                   signatures=[common_pb2.Signature(key_id="k", sig=b"\x01")])
    entry = pb.ConsentEntry(entry_id=3, at=1_700_000_000, scopes=["diag.read"],
                            envelope=envelope)
    data = out.message_data(entry)
    assert data["at"] == 1_700_000_000 and data["scopes"] == ["diag.read"]
    assert data["envelope"]["statement"] == {"a": 1}
    assert data["envelope"]["signatures"] == [{"key_id": "k", "sig": "AQ=="}]
    assert out.message_data(pb.ConsentEntry())["envelope"] is None


def test_known_fields_come_in_reading_order_and_command_lines_last() -> None:
    # The agent sends canonical JSON, i.e. keys sorted alphabetically.
    keys = ["cmdline", "cpu_percent", "memory_rss", "name", "pid", "status", "zzz", "user"]
    assert render.ordered(keys) == ["pid", "name", "user", "cpu_percent", "memory_rss",
                                    "status", "zzz", "cmdline"]
    assert render.ordered(["swap.total", "memory.total", "hostname", "uptime_seconds"]) == [
        "hostname", "uptime_seconds", "memory.total", "swap.total"]
    assert render.label("uptime_seconds") == "Uptime"


def test_long_text_is_clipped_in_tables_only() -> None:
    text = "x" * 500
    assert render.cell("cmdline", text) == "x" * 119 + "…"


def test_an_empty_table_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    out.table("Sessions", ("Session",), [])
    assert capsys.readouterr().out == "Sessions: none\n"


def test_renamed_fields_keep_their_place_and_units() -> None:
    keys = ["cmdline", "cpu_percent", "memory_percent", "memory_rss_bytes", "name", "pid"]
    assert render.ordered(keys) == ["pid", "name", "cpu_percent", "memory_rss_bytes",
                                    "memory_percent", "cmdline"]
    assert render.cell("inodes_total", 6_553_600) == "6553600"
    assert render.cell("latency_seconds", 0.0123) == "12 ms"
    assert render.cell("speed_mbps", 1000) == "1000 Mb/s"
    assert render.label("memory_rss_bytes") == "Memory rss"
    assert render.label("inodes_percent") == "Inodes %"


SPOOF = "slow\x1b[2A\x1b[G Scopes diag.read\nfake line \u202etxt.exe\x9b31m"


def test_what_others_typed_reaches_the_screen_inert(capsys: pytest.CaptureFixture[str]) -> None:
    # Titles, reasons and an agent's inventory come from elsewhere: an older controller, a
    # hostile agent. No escape, line break or bidirectional control gets through.
    out.table("Cases", ("Case", "Title"), [("C-1", SPOOF)])
    out.fields([("Title", SPOOF)])
    shown = capsys.readouterr().out
    assert not {"\x1b", "\u202e", "\x9b"} & set(shown)
    assert "\nfake line" not in shown and shown.count("^Jfake line") == 2
    assert "^[[2A^[[G" in shown and "<U+202E>" in shown and "<U+009B>" in shown
