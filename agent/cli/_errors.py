"""The CLI's error boundary: every failure becomes one line ``error: ...`` and exit 1.

Errors are translated here once, with one table; commands raise domain errors or
:class:`UserError` and never print them. ``RMAINT_DEBUG=1`` lets unexpected errors
through with their traceback, for developers.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer

from agent.approvals import ApprovalError
from agent.cli._common import Options
from agent.config import ConfigError, ConfigMissing
from agent.enrollment import EnrollmentError
from agent.errors import AgentError
from agent.homes import command_for
from agent.local_client import LocalClientError
from permissions import PermissionsError
from pki.files import reason
from pki.identity import IdentityError

_P = ParamSpec("_P")
_R = TypeVar("_R")


class UserError(Exception):
    """Something the user asked for cannot be done; the message says what and why."""


def _os_error(exc: BaseException, _: Path | None) -> str:
    return reason(exc)


# A command the agent's errors tell the user to run, as they quote it.
_QUOTED_COMMAND = re.compile(r"'rmagent ([a-z][^']*)'")


def _not_enrolled(exc: BaseException, home: Path | None) -> str:
    command = command_for("enroll --token T", home)
    other = "another --home" if command.startswith("rmagent --home") else "--home"
    return f"{exc} (enroll it with '{command}', or pass {other})"


def _as_is(exc: BaseException, home: Path | None) -> str:
    """The error's own words, with each quoted 'rmagent ...' command given the home."""
    return _QUOTED_COMMAND.sub(lambda found: f"'{command_for(found.group(1), home)}'", str(exc))


# Ordered: the first entry whose type matches wins, so specific types come first. Each
# renders the error for the home the command was given (None: not known), so that a hint
# names the command as the user would type it.
_MESSAGES: tuple[tuple[type[BaseException], Callable[[BaseException, Path | None], str]],
                 ...] = (
    (ConfigMissing, _not_enrolled),
    (ConfigError, _as_is),
    (LocalClientError, _as_is),
    (ApprovalError, _as_is),
    (EnrollmentError, _as_is),
    (AgentError, _as_is),
    (PermissionsError, _as_is),
    (IdentityError, _as_is),
    (UserError, _as_is),
    (OSError, _os_error),
)


def message_for(exc: BaseException, home: Path | None = None) -> str:
    """The one line the user reads for ``exc``, in a command run for ``home``."""
    for kind, render in _MESSAGES:
        if isinstance(exc, kind):
            return render(exc, home)
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
        except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):
            raise  # BadParameter: a usage error, shown as one by the command tree
        except BrokenPipeError:
            # The reader went away (``rmagent log | head``): not an error to report. Click
            # ends quietly on EPIPE, as rmctl does.
            raise
        except Exception as exc:
            if reported_as_is(exc):
                raise
            raise fail(message_for(exc, _home_of(args, kwargs))) from None

    return wrapper


def _home_of(args: tuple[object, ...], kwargs: dict[str, object]) -> Path | None:
    """The home of the command's context argument (``ctx``), if it has one."""
    for value in (*args, *kwargs.values()):
        # Typer passes its vendored Click context, not a typer.Context: look for the method.
        find = getattr(value, "find_object", None)
        if callable(find):
            found = find(Options)
            return found.home if isinstance(found, Options) else None
    return None
