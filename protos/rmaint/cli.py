"""Usage errors and command lists of rmctl and rmagent.

Typer answers a missing option, a bad value or an unknown command with the command's usage
block and a framed message. In a command group of class :class:`OneLineUsage` (the roots
and their groups), a usage error prints ``error: <what is wrong> (see '<command> --help')``
on stderr instead, one line like every other error, with the exit status it had (2, or a
command's own). A group run with no arguments still prints its help, and its command list
shows each command's whole first sentence, where click would cut it at the terminal's width.
Help names what each option takes (``--case <case-id>``, ``--for <duration>``) and each
argument in capitals (``REQUEST_ID``), instead of the value's Python type.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import typer
from typer._click import exceptions as _click  # typer vendors click; these are its classes
from typer.core import TyperArgument, TyperGroup


class OneLineUsageError(_click.UsageError):
    """A usage error shown as one line that names the help to read.

    ``command`` is the command whose help to name when the error carries no context (the
    option parser raises some without one).
    """

    def __init__(self, message: str, ctx: Any, command: str) -> None:
        super().__init__(message, ctx)
        self.command = ctx.command_path if ctx is not None else command

    def show(self, file: IO[Any] | None = None) -> None:
        what = self.format_message().removesuffix(".")
        typer.echo(f"error: {what[:1].lower()}{what[1:]} (see '{self.command} --help')",
                   err=True)


@contextmanager
def _one_line(command: Callable[[], str], exit_code: int | None) -> Iterator[None]:
    try:
        yield
    except _click.NoArgsIsHelpError as exc:  # the help is shown; the status is the group's
        if exit_code is not None:
            exc.exit_code = exit_code
        raise
    except OneLineUsageError:
        raise
    except _click.UsageError as exc:
        message = _before_the_command(exc) or exc.format_message()
        one_line = OneLineUsageError(message, exc.ctx, command())
        # A group, or a command under it, may give its usage errors their own exit status.
        one_line.exit_code = exit_code if exit_code is not None else exc.exit_code
        raise one_line from exc


def _before_the_command(exc: _click.UsageError) -> str | None:
    """For an option of the root command given after a subcommand (``rmagent log --home
    DIR``): where it goes instead. None for any other error."""
    if not isinstance(exc, _click.NoSuchOption) or exc.ctx is None:
        return None
    root = exc.ctx.find_root()
    name = exc.option_name.split("=", 1)[0]
    if root is exc.ctx or not any(name in param.opts for param in root.command.params):
        return None
    rest = exc.ctx.command_path.removeprefix(root.command_path).strip()
    return f"{name} goes before the command: '{root.command_path} {name} ... {rest}'"


# Long enough for any first sentence: click stops a command's short help at its first
# sentence's end, and the help formatter wraps what does not fit the terminal.
_FIRST_SENTENCE = 400


def write_commands(formatter: Any, rows: list[tuple[str, Any]]) -> None:
    """The "Commands" section: each (name, command) with its help's first sentence."""
    if rows:
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(_FIRST_SENTENCE))
                                for name, command in rows])


# What a text option takes, by its name; any other text option takes ``<its-name>``.
_TEXT_VALUES = {
    "--agent": "<agent-id>", "--case": "<case-id>", "--session": "<session-id>",
    "--grant": "<grant-id>", "--customer": "<customer-id>", "--assign": "<engineer>",
    "--for": "<duration>", "--ttl": "<duration>", "--reason": "<text>", "--title": "<text>",
    "--resolution": "<text>", "--listen": "<host:port>", "--enroll-listen": "<host:port>",
    "--advertise": "<host:port>", "--gateway": "<host:port>", "--database-url": "<url>",
    "--contract-start": "<date>", "--contract-end": "<date>", "--san": "<dns-name>",
    "--server-name": "<dns-name>", "--trust-domain": "<domain>", "--agent-home": "<dir>",
    "--unit-dir": "<dir>", "--prefix": "<dir>", "--identity": "<key-file>",
    "--known-hosts": "<file>", "--host-key": "<ssh-key>", "--key": "<key-id>",
    "--approver": "<approver>", "--sha256": "<digest>", "--file": "<log-file>",
    "--metrics": "<list>", "--include": "<list>", "--columns": "<list>",
    "--where": "<condition>", "--order": "<column>", "--run-as": "<user>",
}
# What a number option takes, by its name; any other takes ``<n>`` (whole) or
# ``<seconds>`` (decimal).
_NUMBER_VALUES = {"--speed": "<factor>", "--port": "<port>", "--valid": "<seconds>",
                  "--every": "<seconds>", "--for": "<seconds>"}


_NUMBER_KINDS = {"int": "integer", "int range": "integer", "float": "number",
                 "float range": "number"}


class _NamedArgument(TyperArgument):
    """An argument shown by its name in capitals (``REQUEST_ID``), in brackets if optional."""

    def make_metavar(self, ctx: Any, *, usage: bool = False) -> str:
        name = self.metavar or (self.name or "").upper()
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        return f"[{name}]" if usage and not self.required and not name.startswith("[") \
            else name

    def get_error_hint(self, ctx: Any) -> str:
        return f"'{self.make_metavar(ctx)}'"


def name_values(command: Any) -> Any:
    """Give ``command``'s options and arguments the names its help shows (see above)."""
    for param in getattr(command, "params", ()):
        if isinstance(param, TyperArgument) and not isinstance(param, _NamedArgument):
            # Typer makes its arguments itself, with no say in their class; this one only
            # changes how the name is shown.
            param.__class__ = _NamedArgument
        elif param.param_type_name == "option" and param.metavar is None \
                and not param.is_flag and not param.count:
            param.metavar = _value_name(param.opts[-1] if param.opts[-1].startswith("--")
                                        else param.opts[0], param.type.name)
        if param.type.name in _NUMBER_KINDS:
            # "'x' is not a valid integer", not "... a valid int range"; a copy, as
            # plain int and float types are shared by every parameter
            param.type = copy.copy(param.type)
            param.type.name = _NUMBER_KINDS[param.type.name]
    return command


def _value_name(option: str, kind: str) -> str | None:
    if kind in ("str", "text"):
        return _TEXT_VALUES.get(option, f"<{option.lstrip('-')}>")
    if kind.startswith("int"):
        return _NUMBER_VALUES.get(option, "<n>")
    if kind.startswith("float"):
        return _NUMBER_VALUES.get(option, "<seconds>")
    return None  # the type names its values itself: <path>, <open|closed>


class OneLineUsage(TyperGroup):
    """A command group whose usage errors, its own or its commands', are one line.

    Its own arguments are parsed in ``make_context``; its command is found, parsed and run
    in ``invoke``, where ``invoked_subcommand`` names it once found. ``usage_exit``, when
    set, is the exit status of every usage error in the group.
    """

    usage_exit: int | None = None

    def make_context(self, info_name: str | None, args: list[str],
                     parent: Any = None, **extra: Any) -> Any:
        def path() -> str:
            name = info_name or self.name or ""
            return f"{parent.command_path} {name}" if parent is not None else name
        with _one_line(path, self.usage_exit):
            return super().make_context(info_name, args, parent=parent, **extra)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        return name_values(command) if command is not None else None

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        listed = ((name, self.get_command(ctx, name)) for name in self.list_commands(ctx))
        write_commands(formatter, [(name, command) for name, command in listed
                                   if command is not None and not command.hidden])

    def invoke(self, ctx: Any) -> Any:
        def path() -> str:
            sub = ctx.invoked_subcommand
            return f"{ctx.command_path} {sub}" if sub else ctx.command_path
        with _one_line(path, self.usage_exit):
            return super().invoke(ctx)
