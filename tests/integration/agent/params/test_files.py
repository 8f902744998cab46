"""Only small regular UTF-8 files are read: links, devices, FIFOs and giants are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.params import FileRefused, parse, preview
from tests.integration.agent.params.conftest import MakeWorld


def _policy(path: Path, **extra: object) -> dict[str, object]:
    return {"files": [{"name": "app", "path": str(path), "format": "kv", "keys": ["A"], **extra}]}


def test_a_symbolic_link_is_refused(make_world: MakeWorld, tmp_path: Path) -> None:
    world = make_world("kv")
    link = tmp_path / "link.env"
    link.symlink_to(world.path)
    with pytest.raises(FileRefused) as refused:
        preview(parse(_policy(link)), "app", {"A": 1})
    assert refused.value.code == "symlink"


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.env"
    os.mkfifo(fifo)
    with pytest.raises(FileRefused) as refused:
        preview(parse(_policy(fifo)), "app", {"A": 1})
    assert refused.value.code == "special-file"


@pytest.mark.parametrize(("path", "code"), [("/dev/null", "special-file"),
                                            ("/etc", "is-directory"),
                                            ("/nonexistent/app.env", "not-found")])
def test_devices_directories_and_missing_files_are_refused(path: str, code: str) -> None:
    with pytest.raises(FileRefused) as refused:
        preview(parse(_policy(Path(path))), "app", {"A": 1})
    assert refused.value.code == code


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.env"
    big.write_text("A=1\n" + "# padding\n" * 200)
    with pytest.raises(FileRefused) as refused:
        preview(parse(_policy(big, max_bytes=1024)), "app", {"A": 2})
    assert refused.value.code == "too-large"


def test_binary_and_unparsable_files_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "bin.env"
    binary.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(FileRefused) as refused:
        preview(parse(_policy(binary)), "app", {"A": 2})
    assert refused.value.code == "not-utf8"
    broken = tmp_path / "broken.json"
    broken.write_text('{"A": 1,')
    table = {"files": [{"name": "app", "path": str(broken), "format": "json", "keys": ["A"]}]}
    with pytest.raises(FileRefused) as refused:
        preview(parse(table), "app", {"A": 2})
    assert refused.value.code == "unparsable"
