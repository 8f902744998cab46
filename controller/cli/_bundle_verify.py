"""``rmctl bundle verify``: a support bundle checked offline, with the exit status scripts need.

Exit status: 0 the bundle is intact, 1 an integrity failure (the first bad member is
named), 3 a usage error (2 is not used, so that no failure can pass for a parse error).

"ok" says what it rests on: without ``--sha256`` only that the bundle agrees with its own
manifest (whoever changed a file could change the manifest too); with it, that the
archive is the one whose hash the agent signed.
The check itself is :func:`controller.bundle_verify.verify_bundle_file`: it trusts nothing
but the file and the SHA-256 given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from typer._click.exceptions import UsageError  # typer vendors click; this is its class
from typer.core import TyperCommand

from controller.cli import _output as out
from controller.cli._app import Options, command

USAGE = 3
INTACT, FAILED = 0, 1
MAX_SHOWN = 20
SELF_CONSISTENT = ("ok: consistent with its own manifest; not checked against the hash the "
                   "agent signed (pass --sha256 from 'rmctl bundle list')")
SIGNED = "ok: matches the hash the agent signed, and its own manifest"
_HEX64 = re.compile(r"[0-9a-f]{64}")
F = TypeVar("F", bound=Callable[..., Any])


class _UsageExits3(TyperCommand):
    """Usage errors of this command exit 3: 1 means "integrity failure"."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            exc.exit_code = USAGE
            raise


def verify_command(group: typer.Typer, name: str) -> Callable[[F], F]:
    """:func:`~controller.cli._app.command`, with usage errors exiting 3."""
    def register(fn: F) -> F:
        command(group, name)(fn)
        info = next(c for c in reversed(group.registered_commands) if c.name == name)
        info.cls = _UsageExits3
        return fn
    return register


def _usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(USAGE)


def verify(opts: Options, file: Path, sha256: str) -> typer.Exit:
    """Check ``file``, show the report; the Exit to raise (see the module docstring)."""
    from controller.bundle_verify import verify_bundle_file

    expected = sha256.strip().lower().removeprefix("sha256:") or None
    if expected is not None and not _HEX64.fullmatch(expected):
        return _usage("--sha256 must be 64 hexadecimal digits")
    try:
        report = verify_bundle_file(file, expected)
    except OSError as exc:
        return _usage(f"cannot read {file}: {exc.strerror or exc}")
    if opts.json:
        out.emit_json(report.to_json())
        return typer.Exit(INTACT if report.ok else FAILED)
    manifest = report.manifest or {}
    out.fields([
        ("Status", "ok" if report.ok else "FAILED"),
        ("Archive", f"{out.size(report.size_bytes)}, sha256:{report.sha256}"
                    + (" (the hash the agent signed)" if expected and report.sha256 == expected
                       else " (NOT the hash given)" if expected else "")),
        ("Manifest", f"sha256:{report.manifest_sha256}" if report.manifest_sha256 else "-"),
        ("Agent", manifest.get("agent_id", "-")), ("Case", manifest.get("case_id", "-")),
        ("Created", out.when(manifest.get("created_at", 0))),
        ("Files checked", report.files_checked),
    ])
    if report.ok:
        out.note(SIGNED if expected else SELF_CONSISTENT)
    if report.first is not None:
        first = report.first
        out.note(f"first bad member: {first.member or '(the archive)'} ({first.kind}): "
                 f"{first.message}")
        for problem in report.problems[1:MAX_SHOWN]:
            out.note(f"  also: {problem.member or '(the archive)'} ({problem.kind}): "
                     f"{problem.message}")
        if len(report.problems) > MAX_SHOWN:
            out.note(f"  and {len(report.problems) - MAX_SHOWN} more (--json lists all)")
    return typer.Exit(INTACT if report.ok else FAILED)
