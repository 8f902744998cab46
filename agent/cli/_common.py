"""What every command shares: global options, the home's files, output and async running."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from agent.config import AgentConfig, AgentPaths, load
from agent.homes import DEFAULT_HOME

_T = TypeVar("_T")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@dataclass(frozen=True)
class Options:
    """The global options, as given before the command."""

    home: Path
    json: bool = False


def options(ctx: typer.Context, json_here: bool = False) -> Options:
    """The global options; ``--json`` counts whether given before or after the command."""
    found = ctx.find_object(Options)
    base = found if found is not None else Options(Path(DEFAULT_HOME).expanduser())
    return Options(base.home, base.json or json_here)


def enrolled(opts: Options) -> tuple[AgentConfig, AgentPaths]:
    """The home's configuration and paths; ConfigMissing if it is not enrolled."""
    config = load(opts.home)
    return config, AgentPaths.of(opts.home, config)


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run one async call to completion (the CLI is synchronous around it)."""
    return asyncio.run(coro)


def console(*, stderr: bool = False) -> Console:
    """A Rich console on the current stdout (or stderr), made per call for test runners.

    Markup and emoji codes are off: engineers write reasons, and text they control must
    show exactly as written, never restyle or hide part of a consent prompt. Messages are
    not wrapped (paths and key ids stay copyable); tables still fit the terminal.
    """
    return Console(file=sys.stderr if stderr else sys.stdout, markup=False, emoji=False,
                   highlight=False, soft_wrap=True)


def emit_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout, keys sorted, one document."""
    print(json.dumps(value, indent=2, sort_keys=True))


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def plain_reason(text: str) -> str:
    """A ``--reason`` as typed, if it is plain text: a line break, terminal escape or
    bidirectional control is a usage error here, before a key is loaded or the daemon
    asked (the engineer and the consent log read it)."""
    from permissions import is_plain_text

    if not is_plain_text(text):
        raise typer.BadParameter("a reason is one line of text, without control characters")
    return text
