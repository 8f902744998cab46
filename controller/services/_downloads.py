"""Large downloads (recordings, bundles, evidence) a caller may have running at once.

Each is read whole into memory before it is streamed (a recording or bundle blob, the
evidence serialized in one read transaction), and a stream the caller does not read holds
it there. So one identity runs at most ``MAX_PER_CALLER`` at a time; another is refused
until one ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from controller.authz import current_caller
from controller.errors import FailedPrecondition

MAX_PER_CALLER = 2
_running: dict[str, int] = {}


@contextlib.contextmanager
def download() -> Iterator[None]:
    """Hold one of the calling identity's download places while the body runs."""
    who = str(current_caller())
    if _running.get(who, 0) >= MAX_PER_CALLER:
        raise FailedPrecondition(f"{MAX_PER_CALLER} downloads of yours are running: let one "
                                 "finish, or cancel it, first")
    _running[who] = _running.get(who, 0) + 1
    try:
        yield
    finally:
        left = _running[who] - 1
        if left:
            _running[who] = left
        else:
            del _running[who]
