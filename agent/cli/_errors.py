"""The CLI's error boundary: every failure becomes one line ``error: ...`` and exit 1.

Errors are translated here once, with one table; commands raise domain errors or
:class:`UserError` and never print them. ``RMAINT_DEBUG=1`` lets unexpected errors
through with their traceback, for developers.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from agent.approvals import ApprovalError
from agent.config import ConfigError, ConfigMissing
from agent.enrollment import EnrollmentError
from agent.errors import AgentError
from agent.local_client import LocalClientError
from permissions import PermissionsError
from pki.identity import IdentityError

_P = ParamSpec("_P")
_R = TypeVar("_R")


class UserError(Exception):
    """Something the user asked for cannot be done; the message says what and why."""


def _os_error(exc: BaseException) -> str:
    assert isinstance(exc, OSError)
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


# Ordered: the first entry whose type matches wins, so specific types come first.
_MESSAGES: tuple[tuple[type[BaseException], Callable[[BaseException], str]], ...] = (
    (ConfigMissing, lambda e: f"{e} (enroll it with 'rmagent enroll --token T', or pass --home)"),
    (ConfigError, str),
    (LocalClientError, str),
    (ApprovalError, str),
    (EnrollmentError, str),
    (AgentError, str),
    (PermissionsError, str),
    (IdentityError, str),
    (UserError, str),
    (OSError, _os_error),
)


def message_for(exc: BaseException) -> str:
    """The one line the user reads for ``exc``."""
    for kind, render in _MESSAGES:
        if isinstance(exc, kind):
            return render(exc)
    return f"unexpected failure ({type(exc).__name__}): {exc}"


def reported_as_is(exc: BaseException) -> bool:
    """True for an unexpected error under ``RMAINT_DEBUG=1``: it keeps its traceback."""
    known = any(isinstance(exc, kind) for kind, _ in _MESSAGES)
    return not known and os.environ.get("RMAINT_DEBUG") == "1"


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned Exit(1)."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(1)


def guarded(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap a command so that no error escapes as a traceback."""

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            # The reader went away (``rmagent log | head``): not an error to report. Click
            # ends quietly on EPIPE, as rmctl does.
            raise
        except Exception as exc:
            if reported_as_is(exc):
                raise
            raise fail(message_for(exc)) from None

    return wrapper
