"""The pure parts of the /proc process table: CPU arithmetic, names, command lines."""

from __future__ import annotations

from pathlib import Path

from agent.diag import _procfs
from agent.diag._procfs import Stat


def stat(cpu_ticks: int) -> Stat:
    return Stat(pid=1, comm="x", state="S", ppid=0, cpu_ticks=cpu_ticks, threads=1,
                start_ticks=5)


def test_cpu_percent_is_ticks_over_wall_time_per_core() -> None:
    ticks = _procfs.TICKS
    assert _procfs.cpu_percent(stat(0), stat(ticks // 2), 1.0) == 50.0
    assert _procfs.cpu_percent(stat(0), stat(3 * ticks), 2.0) == 150.0  # two busy threads
    assert _procfs.cpu_percent(stat(0), stat(1), 3.0) == round(100 / ticks / 3, 1)
    assert _procfs.cpu_percent(stat(0), stat(ticks), 0.0) == 0.0


def test_a_name_cut_by_the_kernel_is_completed_from_the_command_line() -> None:
    assert _procfs.full_name("gnome-keyring-d", ["/usr/bin/gnome-keyring-daemon", "-f"]) \
        == "gnome-keyring-daemon"
    assert _procfs.full_name("gnome-keyring-d", ["/usr/bin/other"]) == "gnome-keyring-d"
    assert _procfs.full_name("gnome-keyring-d", []) == "gnome-keyring-d"
    assert _procfs.full_name("short", ["/bin/shorter-name"]) == "short"


def test_command_lines_split_as_psutil_splits_them(tmp_path: Path) -> None:
    cases = {b"a\x00b c\x00": ["a", "b c"], b"title with spaces": ["title", "with", "spaces"],
             b"one arg with spaces\x00": ["one", "arg", "with", "spaces"], b"": []}
    for pid, (raw, args) in enumerate(cases.items(), start=1):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(raw)
        assert _procfs.cmdline(pid, str(tmp_path)) == args, raw
    assert _procfs.cmdline(99, str(tmp_path)) is None


def test_user_names_of_uids_and_unknown_uids_as_numbers() -> None:
    names = _procfs.UserNames()
    assert names.name(0) == "root"
    assert names.name(2**31 - 7) == str(2**31 - 7)
