"""Files written for people: whole, and never over another by accident."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli._outfile import write_whole


def test_without_force_nothing_there_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "evidence.json"
    target.write_bytes(b"appeared meanwhile")  # after the caller's own check, say
    with pytest.raises(FileExistsError) as refused:
        write_whole(target, b"new", force=False)
    assert refused.value.filename == str(target)
    assert target.read_bytes() == b"appeared meanwhile"
    dangling = tmp_path / "link.json"
    dangling.symlink_to(tmp_path / "nowhere" / "x")
    with pytest.raises(FileExistsError):
        write_whole(dangling, b"new", force=False)
    assert dangling.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evidence.json", "link.json"]


def test_written_whole_and_replaced_only_with_force(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    write_whole(target, b"first", force=False)
    write_whole(target, b"second", force=True)
    assert target.read_bytes() == b"second"
    with pytest.raises(OSError) as missing:
        write_whole(tmp_path / "no" / "such.html", b"x", force=False)
    assert missing.value.filename == str(tmp_path / "no" / "such.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
