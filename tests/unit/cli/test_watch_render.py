"""Rows of ``rmctl diag watch`` from diag.watch samples."""

from __future__ import annotations

import io

from rich.console import Console

from controller.cli import _watch, _watch_render


def _sample(seq: int, at: float, received: int) -> dict[str, object]:
    return {
        "seq": seq, "at": at, "cpu": {"percent": 12.5}, "load": {"load_average_1m": 0.25},
        "memory": {"memory": {"percent": 40.0}, "swap": {"percent": 0.0}},
        "disk": {"filesystems": [{"mountpoint": "/", "percent": 10.0},
                                 {"mountpoint": "/var", "percent": 91.5}]},
        "network": {"interfaces": [{"name": "lo", "received_bytes": 10**9, "sent_bytes": 0},
                                   {"name": "eth0", "received_bytes": received,
                                    "sent_bytes": 0}]},
        "processes": {"processes": [{"name": "java", "pid": 42, "cpu_percent": 150.0}]},
    }


def test_a_sample_becomes_one_row_of_the_chosen_metrics() -> None:
    metrics = ["cpu", "memory", "load", "disk", "network", "processes"]
    rows = _watch_render.WatchRows(metrics)
    assert _watch_render.headings(metrics) == [
        "#", "Time", "CPU %", "Mem %", "Swap %", "Load 1m", "Fullest fs", "Net in/s",
        "Net out/s", "Top process"]
    first = rows.row(_sample(1, 1000.0, 0))
    second = rows.row(_sample(2, 1002.0, 4096))
    assert first[2:] == ["12.5 %", "40.0 %", "0.0 %", "0.25", "/var 91.5 %", "-", "-",
                         "java (42) 150.0 %"]
    assert second[0] == "2" and second[7:9] == ["2.0 KiB", "0 B"]  # loopback left out


def test_missing_values_show_as_dashes_and_the_live_table_renders() -> None:
    rows = _watch_render.WatchRows(["cpu", "disk", "processes"])
    row = rows.row({"seq": 1})
    assert row == ["1", "-", "-", "-", "-"]
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    console.print(_watch._table(_watch_render.headings(["cpu", "disk", "processes"]), [row]))
    assert "CPU %" in console.file.getvalue()  # type: ignore[attr-defined]


def test_plain_lines_keep_their_columns_aligned() -> None:
    metrics = ["cpu", "memory", "disk", "network", "processes"]
    columns = _watch_render.headings(metrics)
    rows = _watch_render.WatchRows(metrics)
    row = rows.row({"seq": 12, "at": 1_700_000_000.0, "cpu": {"percent": 3.5},
                    "disk": {"filesystems": [{"mountpoint": "/", "percent": 22.8}]},
                    "processes": {"processes": [{"name": "python", "pid": 7,
                                                 "cpu_percent": 1.0}]}})
    header = _watch_render.plain_line(columns, columns)
    line = _watch_render.plain_line(columns, row)
    for column, cell in zip(columns, row, strict=True):
        assert header.index(column) == line.index(cell, header.index(column)), (header, line)
