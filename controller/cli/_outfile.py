"""Files the CLI writes for people: whole or not at all, never over one by accident."""

from __future__ import annotations

import os
from pathlib import Path


def write_whole(path: Path, data: bytes, *, force: bool) -> None:
    """Write ``path`` whole or not at all: a reader (or a crash) never sees part of it.

    Without ``force`` it never replaces what is there, even a file (or a symbolic link)
    that appeared while the data was being fetched: the name is linked into place, which
    fails if it exists. Errors are OSError naming ``path``, never the temporary file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if force:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        if os.path.lexists(temporary):
            temporary.unlink()
