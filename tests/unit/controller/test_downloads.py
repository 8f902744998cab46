"""Large downloads: a caller runs only so many at once; each ends by releasing its place."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from controller.authz import _CALLER, Caller
from controller.errors import FailedPrecondition
from controller.services._downloads import MAX_PER_CALLER, download
from pki.identity import Identity


@contextlib.contextmanager
def _as(name: str) -> Iterator[None]:
    token = _CALLER.set(Caller(Identity("example.test", "auditor", name)))
    try:
        yield
    finally:
        _CALLER.reset(token)


def test_a_caller_runs_only_so_many_downloads_and_others_are_not_held_up() -> None:
    with contextlib.ExitStack() as running, _as("bob"):
        for _ in range(MAX_PER_CALLER):
            running.enter_context(download())
        with pytest.raises(FailedPrecondition, match="downloads of yours are running"):
            with download():
                pass
        with _as("carol"), download():  # another auditor's place is their own
            pass
    with _as("bob"), download():  # the ended ones gave their places back
        pass


def test_a_download_that_fails_gives_its_place_back() -> None:
    with _as("bob"):
        for _ in range(MAX_PER_CALLER + 1):
            with pytest.raises(RuntimeError), download():
                raise RuntimeError("the stream broke")
        with download():
            pass
