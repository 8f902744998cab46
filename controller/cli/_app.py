"""The root of rmctl: global options, command registration and the one error boundary.

Every command accepts ``--home`` and ``--json`` both before and after its name
(``rmctl --home H init`` and ``rmctl init --home H``): :func:`command` adds them to each
command and hands the command a resolved :class:`Options`.

Command groups are loaded lazily: :data:`GROUPS` names each group's module, and the root
imports that module (and builds its commands) only when the group is used, so one command
does not pay for the whole command tree. ``rmctl --help`` lists them from :data:`GROUPS`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup
from typer.models import TyperInfo

from rmaint.cli import OneLineUsage, write_commands

HOME_ENV = "RMAINT_HOME"
DEBUG_ENV = "RMCTL_DEBUG"
DEFAULT_HOME = "~/.rmaint"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Options:
    """Global options as resolved for one command."""

    home: Path
    json: bool = False


def describe(exc: Exception) -> str:
    """The one-line message for an error that ends a command; what it quotes from the
    controller or an agent is shown inert (rmaint.text.printable)."""
    from controller.client.errors import ClientError
    from rmaint.text import printable

    if isinstance(exc, ClientError):
        return printable(str(exc))
    if isinstance(exc, OSError):
        from pki.files import reason  # on errors only: rmctl --help loads no cryptography

        return printable(reason(exc))
    return printable(str(exc)) or f"unexpected {type(exc).__name__}"


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned Exit(1). What the
    message quotes from the controller or an agent is shown inert (rmaint.text)."""
    from rmaint.text import printable

    typer.echo(f"error: {printable(message)}", err=True)
    return typer.Exit(1)


@dataclass(frozen=True)
class LazyGroup:
    """A command group: the ``typer.Typer`` at ``module.attribute``, and the help that
    ``rmctl --help`` lists for it (the group is made with it, see :func:`group`)."""

    module: str
    attribute: str
    help: str


GROUPS: dict[str, LazyGroup] = {name: LazyGroup(f"controller.cli.{module}", attribute, help)
                                for name, module, attribute, help in (
    ("customer", "admin", "customer_app", "Customers and their service contracts."),
    ("agent", "admin", "agent_app", "Agents on customer hosts."),
    ("engineer", "admin", "engineer_app", "Engineers (and the list of all people)."),
    ("auditor", "admin", "auditor_app", "Auditors."),
    ("case", "cases", "case_app", "Support cases."),
    ("access", "access", "access_app", "Access requests to customer agents."),
    ("session", "sessions", "session_app", "Remote sessions under a customer's grant."),
    ("diag", "diag", "diag_app", "Diagnostics (scope diag.read) in the current session."),
    ("logs", "logs", "logs_app", "Tail and search of logs (scope diag.logs)."),
    ("files", "files", "files_app", "Status and hash of files (scope diag.files)."),
    ("bundle", "bundle", "bundle_app", "Support bundles attached to cases (scope diag.read)."),
    ("data", "data", "data_app", "Data correction (scopes data.read, data.write)."),
    ("device", "device", "device_app", "Agentless devices behind an agent (scope device.exec)."),
    ("config", "config", "config_app", "Parameter changes (scope config.write)."),
    ("service", "service", "service_app", "Service control (scope service.control)."),
    ("consent", "access", "consent_app", "The consent log."),
    ("lock", "lock", "lock_app", "Locks on agents, engineer keys, grants and cases."),
    ("audit", "audit", "audit_app", "Verify the controller's tamper-evident log; evidence."),
)}


def group(name: str) -> typer.Typer:
    """The ``typer.Typer`` of the command group ``name`` in :data:`GROUPS`."""
    return typer.Typer(help=GROUPS[name].help, no_args_is_help=True, cls=OneLineUsage)


class RootGroup(OneLineUsage):
    """Loads command groups on first use, and turns any error escaping a command into one
    line on stderr and exit status 1 (usage errors: one line and exit status 2)."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return names + [name for name in GROUPS if name not in names]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in GROUPS:
            found = _load_group(cmd_name)
            self.add_command(found, cmd_name)
        return found

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """As every group lists commands, without loading the groups to read their help."""
        rows = []
        for name in self.list_commands(ctx):
            listed = super().get_command(ctx, name) or TyperCommand(name, help=GROUPS[name].help)
            if not listed.hidden:
                rows.append((name, listed))
        write_commands(formatter, rows)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            raise fail(describe(exc)) from exc


app = typer.Typer(
    name="rmctl", cls=RootGroup, no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False, rich_markup_mode=None,
    help="rmaint for the service company: cases, consent, sessions and diagnostics.",
)


def _load_group(name: str) -> TyperGroup:
    """The click group of ``GROUPS[name]``, built as ``app.add_typer`` would build it."""
    entry = GROUPS[name]
    sub = getattr(importlib.import_module(entry.module), entry.attribute)
    return typer.main.get_group_from_info(
        TyperInfo(sub, name=name), pretty_exceptions_short=app.pretty_exceptions_short,
        suggest_commands=app.suggest_commands, rich_markup_mode=app.rich_markup_mode)

_HOME_HELP = f"Home directory of this identity (default {DEFAULT_HOME})."
_JSON_HELP = "Print machine-readable JSON instead of tables."


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option("--home", envvar=HOME_ENV, help=_HOME_HELP,
                                              show_default=False)] = None,
    json_output: Annotated[bool, typer.Option("--json", help=_JSON_HELP)] = False,
) -> None:
    ctx.obj = Options(home=(home or Path(DEFAULT_HOME)).expanduser(), json=json_output)


def _resolve(ctx: typer.Context, home: Path | None, json_output: bool) -> Options:
    root = ctx.find_root().obj
    base = root if isinstance(root, Options) else Options(Path(DEFAULT_HOME).expanduser())
    return replace(base, home=home.expanduser() if home else base.home,
                   json=base.json or json_output)


def command(group: typer.Typer, name: str | None = None) -> Callable[[F], F]:
    """Register ``fn(opts, ...)`` on ``group`` with ``--home``/``--json`` of its own."""
    def register(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        # Typer passes everything by name, so every parameter can be keyword-only.
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for p in signature.parameters.values() if p.name != "opts"]

        @functools.wraps(fn)
        def wrapper(rmctl_ctx: typer.Context, *, rmctl_home: Path | None = None,
                    rmctl_json: bool = False, **kwargs: Any) -> Any:
            return fn(_resolve(rmctl_ctx, rmctl_home, rmctl_json), **kwargs)

        params = [_param("rmctl_ctx", typer.Context, inspect.Parameter.empty),
                  *own, *_GLOBALS]
        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        group.command(name)(wrapper)
        return fn
    return register


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=default)


_GLOBALS = [
    _param("rmctl_home", Annotated[Path | None, typer.Option(
        "--home", help="Same as the global --home.", show_default=False)], None),
    _param("rmctl_json", Annotated[bool, typer.Option("--json", help=_JSON_HELP)], False),
]


def main() -> None:
    """Console entry point ``rmctl``: never a traceback; Ctrl-C exits 130."""
    try:
        app(prog_name="rmctl")
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        typer.echo(f"error: {describe(exc)}", err=True)
        sys.exit(1)
