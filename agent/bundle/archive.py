"""The support bundle's archive: a tar.gz whose first member is ``MANIFEST.json``.

The manifest (format ``rmaint-bundle/1``) names the agent, the case and the snapshot time,
and lists every other member with its archive path, source (the operation, path or unit
it came from), size, SHA-256 and the number of values redacted in it; then what could not
be read (``errors``) and what the size limit left out (``size_limit``). A verifier checks
each member against it, so it comes first: it can be read before anything it describes.

The archive is deterministic for the same snapshot: members in a fixed order, every
mtime the snapshot time, owner 0:0 without names, mode 0644, no directories or links,
relative names without ``..``, and no file name or time in the gzip header.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from agent.bundle.collect import Staging

if TYPE_CHECKING:
    import tarfile

FORMAT = "rmaint-bundle/1"
MANIFEST_NAME = "MANIFEST.json"
# The tar end, its padding to a record, the gzip framing, the manifest's fixed fields:
# what the budget of the members leaves free (see Staging, which charges the rest).
FIXED_RESERVE = 32 * 1024


def reserve(limit: int) -> int:
    """Bytes of ``limit`` kept for the fixed overhead and the gzip framing (a stored
    deflate block adds 5 bytes per 64 KiB when the content does not compress)."""
    return FIXED_RESERVE + limit // 4096 + 1024


def manifest(*, agent_id: str, case_id: str, created_at: float, sections: Sequence[str],
             limit: int, staging: Staging, withheld: Mapping[str, str] | None = None) -> bytes:
    """The manifest of what ``staging`` holds, as the archive carries it; ``withheld``
    the sections left out because the grant or the customer does not allow them."""
    body: dict[str, Any] = {
        "format": FORMAT, "agent_id": agent_id, "case_id": case_id, "created_at": created_at,
        "sections": list(sections),
        "sections_withheld": [{"section": s, "why": why} for s, why in (withheld or {}).items()],
        "files": [m.to_json() for m in staging.members],
        "errors": [f.to_json() for f in staging.faults],
        "errors_omitted": staging.faults_omitted,
        "size_limit": {"max_bytes": limit, "reached": staging.limited,
                       "cut": staging.cut, "cut_omitted": staging.cut_omitted},
    }
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode()


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write(out: IO[bytes], manifest_bytes: bytes, staging: Staging, mtime: int) -> None:
    """The archive into ``out``: the manifest, then every staged member in order.

    Checks between members whether the operation was cancelled (``staging.check``).
    """
    import tarfile  # loaded with the first bundle: an idle agent does not hold it

    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=mtime) as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info(MANIFEST_NAME, len(manifest_bytes), mtime), io.BytesIO(manifest_bytes))
        for member in staging.members:
            staging.check()
            tar.addfile(_info(member.path, member.size, mtime), staging.read(member))
