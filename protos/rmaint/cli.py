"""Usage errors of rmctl and rmagent: one line, like every other error they print.

Typer answers a missing option, a bad value or an unknown command with the command's usage
block and a framed message. A root group of class :class:`OneLineUsage` prints
``error: <what is wrong> (see '<command> --help')`` on stderr instead, and exits 2 as before.
Running a group with no arguments still prints its help.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import typer
from typer._click import exceptions as _click  # typer vendors click; these are its classes
from typer.core import TyperGroup


class OneLineUsageError(_click.UsageError):
    """A usage error shown as one line that names the help to read."""

    def show(self, file: IO[Any] | None = None) -> None:
        see = ""
        if self.ctx is not None and self.ctx.command.get_help_option(self.ctx) is not None:
            see = f" (see '{self.ctx.command_path} {self.ctx.help_option_names[0]}')"
        what = self.format_message().removesuffix(".")
        typer.echo(f"error: {what[:1].lower()}{what[1:]}{see}", err=True)


@contextmanager
def _one_line() -> Iterator[None]:
    try:
        yield
    except (_click.NoArgsIsHelpError, OneLineUsageError):
        raise
    except _click.UsageError as exc:
        one_line = OneLineUsageError(exc.format_message(), exc.ctx)
        one_line.exit_code = exc.exit_code  # a command may give its usage errors their own
        raise one_line from exc


class OneLineUsage(TyperGroup):
    """A root command group whose usage errors, its own or any subcommand's, are one line.

    Parsing the root's arguments happens in ``make_context``; finding and parsing a
    subcommand, and running it, happen in ``invoke``.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line():
            return super().invoke(ctx)
