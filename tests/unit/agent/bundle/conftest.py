"""A customer host in miniature for bundle.create: allowlisted roots and logs with secrets
in them, and things to refuse (links out of the roots, a FIFO, a binary, a linked log)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.catalogue import PART_LIMIT
from agent.context import OperationContext
from agent.diag.policy import DiagConfig, parse

SNAPSHOT = 1_750_000_000.0
CONTEXT = OperationContext(agent_id="web-1", grant_id="G-1", case_id="C-7", session_id="S-1",
                           seq=1, engineer="eve", engineer_key_id="k1",
                           scopes=("diag.read", "diag.logs", "diag.files"))
Emit = Callable[[bytes], Awaitable[None]]


@dataclass
class World:
    """A customer host in miniature: allowlisted roots and logs, and things to refuse."""

    root: Path
    conf: Path
    log: Path
    home: Path

    def diag(self, **extra: Any) -> DiagConfig:
        return parse({"file_roots": [str(self.conf)],
                      "log_files": [str(self.log), str(self.root / "linked.log")],
                      "redact_patterns": [{"name": "acme", "pattern": "ACME-[0-9]{8}"}],
                      **extra})

    @property
    def spool(self) -> Path:
        return self.home / "bundles"


@pytest.fixture
def world(tmp_path: Path) -> World:
    conf = tmp_path / "etc" / "app"
    (conf / "conf.d").mkdir(parents=True)
    (conf / "app.conf").write_text("listen = 8080\npassword = hunter2\n")
    (conf / "conf.d" / "db.conf").write_text("url = postgres://app:s3cret@db/app\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow").write_text("root:TOPSECRET\n")
    (conf / "escape.conf").symlink_to(outside / "shadow")   # a file leading out of the root
    (conf / "linked-dir").symlink_to(outside)               # a directory leading out
    os.mkfifo(conf / "pipe")
    (conf / "blob.bin").write_bytes(b"\x7fELF\x00\x01")
    log = tmp_path / "app.log"
    log.write_text("".join(f"request {i} ok\n" for i in range(50))
                   + "login token: abc123def\nticket ACME-12345678 opened\n")
    (tmp_path / "linked.log").symlink_to(log)               # a log that is a link: refused
    home = tmp_path / "home"
    home.mkdir()
    return World(tmp_path, conf, log, home)


class Collector:
    """An ``emit`` that keeps the parts, as the dispatcher would send them."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    async def __call__(self, part: bytes) -> None:
        assert 0 < len(part) <= PART_LIMIT
        self.parts.append(part)

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)


def members(data: bytes) -> dict[str, bytes]:
    """Every member's bytes, in archive order."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def manifest_of(data: bytes) -> dict[str, Any]:
    return json.loads(members(data)["MANIFEST.json"])  # type: ignore[no-any-return]


def spool_descriptors(spool: Path) -> list[str]:
    """This process's open files in the spool (unnamed temporary files included)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(spool) + "/"):
            found.append(target)
    return found
