"""Support bundles built by hand for the verifier's tests: a good one, and every way of
spoiling one (members added, dropped or changed, a manifest edited, unsafe members)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FILES = {
    "diag/system.json": b'{"hostname": "web-1"}\n',
    "config/etc/app/app.conf": b"listen = 8080\npassword = ***\n",
    "logs/var/log/app.log": b"request 1 ok\nrequest 2 ok\n",
}
Member = tuple[tarfile.TarInfo, bytes]


def manifest_for(files: dict[str, bytes]) -> dict[str, Any]:
    return {"format": "rmaint-bundle/1", "agent_id": "web-1", "case_id": "C-7",
            "created_at": 1_750_000_000.0, "sections": ["system", "configs", "logs"],
            "files": [{"path": name, "source": name, "size": len(data),
                       "sha256": hashlib.sha256(data).hexdigest(), "redactions": 0}
                      for name, data in files.items()],
            "errors": [], "errors_omitted": 0,
            "size_limit": {"max_bytes": 1 << 26, "reached": False, "cut": []}}


def regular(name: str, data: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_750_000_000
    return info, data


def special(name: str, kind: bytes, target: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def write(path: Path, members: list[Member]) -> Path:
    with gzip.open(path, "wb") as packed, tarfile.open(fileobj=packed, mode="w",
                                                        format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def bundle(path: Path, *, files: dict[str, bytes] = FILES,
           edit: Callable[[dict[str, Any]], None] | None = None,
           after: Sequence[Member] = (), skip: str = "") -> Path:
    manifest = manifest_for(files)
    if edit is not None:
        edit(manifest)
    members = [regular("MANIFEST.json", json.dumps(manifest).encode())]
    members += [regular(name, data) for name, data in files.items() if name != skip]
    return write(path, [*members, *after])
