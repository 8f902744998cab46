"""files.stat and files.hash: only under allowlisted roots, only regular files, bounded."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.catalogue import OperationSpec, build_catalogue
from agent.diag import _paths
from agent.diag._paths import PathRefused
from agent.diag.policy import DiagConfig
from agent.errors import InvalidParams


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "app.toml").write_text("port = 8080\n")
    (tmp_path / "outside.txt").write_text("not yours\n")
    return root


def ops(root: Path, **changes: Any) -> dict[str, OperationSpec]:
    return build_catalogue(DiagConfig(file_roots=(str(root),), **changes))


async def run(name: str, path: Path | str, root: Path, **changes: Any) -> dict[str, Any]:
    # A blocking open (a FIFO, a device) would hang here: bound every call.
    return await asyncio.wait_for(ops(root, **changes)[name].prepare({"path": str(path)})(), 5)


async def test_stat_matches_os_stat(root: Path) -> None:
    path = root / "conf" / "app.toml"
    path.chmod(0o640)
    result = await run("files.stat", path, root)
    st = os.stat(path)
    assert result["type"] == "file" and result["real_path"] == str(path)
    assert (result["size_bytes"], result["mode"], result["permissions"]) == \
        (st.st_size, "0640", "-rw-r-----")
    assert (result["uid"], result["gid"], result["inode"]) == (st.st_uid, st.st_gid, st.st_ino)
    assert result["modified_at"] == st.st_mtime
    assert (await run("files.stat", root, root))["type"] == "directory"


async def test_hash_matches_hashlib(root: Path) -> None:
    path = root / "big.bin"
    data = os.urandom(3 * 1024 * 1024 + 5)  # several chunks
    path.write_bytes(data)
    result = await run("files.hash", path, root)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["size_bytes"] == len(data)


async def test_traversal_and_paths_outside_the_roots_are_refused(root: Path,
                                                                 tmp_path: Path) -> None:
    for name in ("files.stat", "files.hash"):
        with pytest.raises(InvalidParams, match=r"'\.\.'"):
            await run(name, f"{root}/conf/../../outside.txt", root)
        with pytest.raises(InvalidParams, match="file_roots"):
            await run(name, tmp_path / "outside.txt", root)
        with pytest.raises(InvalidParams, match="file_roots"):
            await run(name, f"{root}-sibling/x", root)
        with pytest.raises(InvalidParams, match="absolute"):
            await run(name, "conf/app.toml", root)


async def test_symbolic_links_out_of_the_roots_are_refused(root: Path, tmp_path: Path) -> None:
    (root / "escape").symlink_to(tmp_path / "outside.txt")
    (root / "etc").symlink_to("/etc")
    (root / "relative").symlink_to("../outside.txt")
    for name in ("files.stat", "files.hash"):
        for path in (root / "escape", root / "etc" / "hostname", root / "relative"):
            result = await run(name, path, root)
            assert result == {"path": str(path), "error": "outside-allowlist",
                              "message": "the path resolves outside the allowlisted roots"}


async def test_symbolic_links_within_the_roots_are_followed(root: Path, tmp_path: Path) -> None:
    (root / "current").symlink_to(root / "conf")
    result = await run("files.hash", root / "current" / "app.toml", root)
    assert result["real_path"] == str(root / "conf" / "app.toml")
    assert result["sha256"] == hashlib.sha256(b"port = 8080\n").hexdigest()
    linked = tmp_path / "linked-root"
    linked.symlink_to(root)  # a root that is itself a link
    result = await run("files.stat", linked / "conf" / "app.toml", linked)
    assert result["type"] == "file"


async def test_special_files_are_refused_without_blocking(root: Path) -> None:
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(root / "sock"))
        for name in ("files.stat", "files.hash"):
            for path in (root / "fifo", root / "sock"):
                assert (await run(name, path, root))["error"] == "special-file"


async def test_a_device_node_is_refused(root: Path) -> None:
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs privileges")
    for name in ("files.stat", "files.hash"):
        assert (await run(name, root / "null", root))["error"] == "special-file"


async def test_hash_limits_and_other_refusals(root: Path) -> None:
    (root / "big").write_bytes(b"x" * 101)
    assert (await run("files.hash", root / "big", root, max_hash_bytes=100))["error"] == \
        "too-large"
    assert (await run("files.hash", root / "big", root, max_hash_bytes=101))["size_bytes"] == 101
    assert (await run("files.hash", root / "conf", root))["error"] == "is-directory"
    assert (await run("files.stat", root / "missing", root))["error"] == "not-found"
    assert (await run("files.hash", root / "missing", root))["error"] == "not-found"


def test_the_file_actually_opened_is_checked_again(root: Path, tmp_path: Path) -> None:
    """If a directory is swapped for a link between resolving and opening, the open file
    (as /proc/self/fd names it) lies outside the roots, and that is caught."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("no /proc")
    fd = os.open(tmp_path / "outside.txt", os.O_RDONLY)
    try:
        with pytest.raises(PathRefused, match="outside"):
            _paths._check_opened(fd, [str(root)])
        inside = os.open(root / "conf" / "app.toml", os.O_RDONLY)
        _paths._check_opened(inside, [str(root)])
        os.close(inside)
    finally:
        os.close(fd)
