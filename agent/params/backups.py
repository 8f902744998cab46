"""Where the text a change replaced is kept until the change is undone.

One file per applied change, named by the hex of the change's digest, written 0600 and fsynced
in a directory only the agent may read (0700). A file's ``backup_dir`` from the policy
wins; otherwise ``<root>/<name>``, with ``root`` under the agent home.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from agent.params.errors import Drifted
from agent.params.policy import ParamFile
from pki.files import write_private

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")


class Backups:
    """The backup store rooted at ``root`` (e.g. ``<agent home>/params-backups``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, file: ParamFile) -> Path:
        return Path(file.backup_dir) if file.backup_dir else self.root / file.name

    def path(self, file: ParamFile, digest: str) -> Path:
        match = _DIGEST.fullmatch(digest)
        if match is None:
            raise Drifted("not a change digest")
        return self.directory(file) / f"{match.group(1)}.before"

    def save(self, file: ParamFile, digest: str, data: bytes) -> Path:
        """Keep ``data`` durably for the change ``digest``; the path written."""
        directory = self.directory(file)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path(file, digest)
        write_private(path, data)
        return path

    def load(self, file: ParamFile, digest: str) -> bytes:
        """The kept bytes; Drifted if there are none."""
        path = self.path(file, digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise Drifted(f"{file.name}: the backup of this change is missing") from exc
        with os.fdopen(fd, "rb") as handle:
            return handle.read(file.max_bytes + 1)
