"""The auditor's tools: verify the controller's log, export and check evidence offline.

Exit status of verify and verify-bundle: 0 verified, 1 integrity failure, 2 incomplete,
3 usage error; of reconcile: 0 consistent, 1 differences, 2 incomplete, 3 usage error.
Evidence is always checked here, against the pinned log key (see
:mod:`controller.client.audit`), never trusted from the controller.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from controller.cli import _output as out
from controller.cli._app import DEBUG_ENV, GROUPS, Options, command, describe
from controller.cli._outfile import write_whole
from controller.cli._run import with_client
from rmaint.cli import OneLineUsage

if TYPE_CHECKING:
    import tlog
    from controller.audit.evidence import Evidence
    from controller.audit.verify import Report
    from controller.client.api import ControllerClient

USAGE = 3
EXIT = {"verified": 0, "failed": 1, "incomplete": 2}


class _AuditGroup(OneLineUsage):
    """Exit 1 is kept for integrity failures, which commands return themselves. A usage
    error exits 3 here (2 means "incomplete"), and so does a name or identity that cannot
    be used; a check that could not be made at all (the controller unreachable, busy or
    failing) is incomplete: 2."""

    usage_exit = USAGE

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise  # a reader that went away (| head) ends quietly, as everywhere
        except Exception as exc:
            from controller.client import errors

            # What the user named does not exist or cannot be used (a case, an agent, an
            # event, a key file, an identity that may not audit): a usage error, never to
            # be read as an integrity failure.
            if isinstance(exc, errors.ConfigError | errors.InputError | errors.LoginError
                          | errors.InvalidArgument | errors.NotFound | errors.PermissionDenied
                          | errors.Unauthenticated | OSError):
                raise _usage(describe(exc)) from exc
            if os.environ.get(DEBUG_ENV):
                raise
            typer.echo(f"error: {describe(exc)} (not checked)", err=True)
            raise typer.Exit(EXIT["incomplete"]) from exc


audit_app = typer.Typer(help=GROUPS["audit"].help, no_args_is_help=True, cls=_AuditGroup)

KeyOpt = Annotated[Path | None, typer.Option(
    "--key", help="The log's verifier key file (log.vkey); default: the key pinned in the home.")]


ForceOpt = Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")]


def _refuse_existing(path: Path, force: bool) -> None:
    """Evidence already written is not replaced by accident: only with ``--force``. A
    symbolic link counts as existing, even one that points nowhere."""
    if os.path.lexists(path) and not force:
        raise _usage(f"{path} exists: pass --force to replace it")


def _usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(USAGE)


def _scope_count(case: str, session: str, full: bool) -> None:
    if sum((bool(case), bool(session), full)) != 1:
        raise _usage("name exactly one of --case, --session or --full")


def _fetch(opts: Options, key: Path | None,
           **scope: Any) -> tuple[tlog.NoteVerifier, bytes, dict[str, Any]]:
    """Pin (or read the pinned) key, fetch evidence; says so when it pinned just now.
    Also the scope the evidence must name (``_check(..., asked=...)``)."""
    from controller.client.audit import evidence_request, pinned_key, scope_asked

    async def work(client: ControllerClient) -> tuple[Any, bytes]:
        pinned = await pinned_key(opts.home, client, key)
        return pinned, await client.evidence(evidence_request(**scope))

    pinned, data = with_client(opts, work)
    if pinned.first_use:  # on stderr: stdout stays the report (and valid --json)
        typer.echo(f"pinned the controller's log key on first use: {pinned.key.vkey()} "
                   f"(saved in {opts.home / 'log.vkey'}; compare it with the deployment's "
                   f"log.vkey)", err=True)
    return pinned.key, data, scope_asked(**scope)


_COSIGNATURES_NOT_CHECKED = "not checked (audit verify-bundle --agent-key checks an agent's)"


def _show(opts: Options, evidence: Evidence, report: Report, *,
          agent_keys_given: bool = False) -> typer.Exit:
    if opts.json:
        out.emit_json({"status": report.status, "scope": evidence.scope, "size": report.size,
                       "root": report.root_hash.hex(), "records": report.records,
                       "sessions": report.sessions, "open_sessions": list(report.open_sessions),
                       "consistency_proofs": report.consistency,
                       "cosigned_by": list(report.cosigned_by),
                       "faults": [f.__dict__ for f in report.faults]})
    else:
        out.fields([("Status", report.status), ("Scope", _scope_text(evidence.scope)),
                    ("Checkpoint", f"size {report.size}, root {report.root_hash.hex()}"),
                    ("Records", report.records), ("Sessions", report.sessions),
                    ("Open sessions", ", ".join(report.open_sessions) or "-"),
                    ("Consistency proofs", report.consistency),
                    ("Cosigned by", ", ".join(report.cosigned_by) or (
                        "-" if agent_keys_given else _COSIGNATURES_NOT_CHECKED)),
                    ("Envelopes", report.envelopes)])
        for fault in report.faults[:20]:
            where = "-" if fault.index is None else f"leaf {fault.index}"
            out.note(f"{fault.severity}: {where} ({fault.kind}): {fault.what}")
        last = max((r.index for r in evidence.records), default=None)
        scoped = next((k for k in ("case", "session") if k in evidence.scope), None)
        if scoped is not None and last is not None and report.status == "verified":
            # Chains prove nothing is missing before a record; nothing signed names the last.
            out.note(f"complete from the {scoped}'s first record to leaf {last}; a later record "
                     f"of the {scoped} would show only in 'audit verify --full'")
    return typer.Exit(EXIT[report.status])


def _scope_text(scope: dict[str, Any]) -> str:
    if scope.get("full"):
        return "the full log"
    if "event" in scope:  # a leaf of the log, not a session's event number
        return f"leaf {scope['event']} of the log"
    # "v not in (None, False)" would drop event 0, which equals False
    return ", ".join(f"{k} {v}" for k, v in scope.items()
                     if v is not None and v is not False and v != "")


def _check(data: bytes, key: tlog.NoteVerifier, agent_keys: Sequence[tlog.NoteVerifier] = (),
           *, asked: dict[str, Any] | None = None) -> tuple[Evidence, Report]:
    """``asked``: the scope fetched evidence must carry (None: a file, any scope)."""
    from controller.audit.errors import BadEvidence
    from controller.client.audit import check

    try:
        return check(data, key, agent_keys, asked=asked)
    except BadEvidence as exc:  # the evidence file's own words may be quoted: inert
        typer.echo(f"error: {out.inert(str(exc))}", err=True)
        raise typer.Exit(EXIT["failed"]) from exc


@command(audit_app, "verify")
def audit_verify(
    opts: Options,
    case: Annotated[str, typer.Option(help="Verify this case's records.")] = "",
    session: Annotated[str, typer.Option(help="Verify this session's records.")] = "",
    full: Annotated[bool, typer.Option("--full", help="Verify the whole log.")] = False,
    since: Annotated[Path | None, typer.Option(
        help="A checkpoint saved earlier (audit checkpoint --save): prove the log only grew."
    )] = None,
    key: KeyOpt = None,
) -> None:
    """Verify the controller's log here, against the pinned key; pinpoint the first fault."""
    _scope_count(case, session, full)
    kept = _kept(since) if since is not None else b""
    pinned, data, asked = _fetch(opts, key, case=case, session=session, full=full, since=kept)
    evidence, report = _check(data, pinned, asked=asked)
    raise _show(opts, evidence, report)


@command(audit_app, "verify-bundle")
def audit_verify_bundle(
    opts: Options,
    file: Annotated[Path, typer.Argument(help="An evidence bundle or proof file.")],
    key: KeyOpt = None,
    agent_key: Annotated[list[Path] | None, typer.Option(
        "--agent-key", help="An agent's log verifier key file (repeatable; from the customer, "
        "e.g. rmagent verify-log --json): require and check its cosignature.")] = None,
) -> None:
    """Check an evidence bundle offline, trusting only the pinned log key and the agent
    log keys given (never the controller's record of them)."""
    from controller.client.audit import read_agent_keys, read_pin

    pinned = read_pin(opts.home, key)
    if pinned is None:
        raise _usage(f"no log key pinned in {opts.home}: give --key <log.vkey>")
    agents = read_agent_keys(agent_key or [])
    evidence, report = _check(_read(file), pinned, agents)
    raise _show(opts, evidence, report, agent_keys_given=bool(agents))


@command(audit_app, "reconcile")
def audit_reconcile(
    opts: Options,
    agent: Annotated[str, typer.Option("--agent", help="The agent whose log to compare.")],
) -> None:
    """Compare an agent's witnessed log with the controller's events for it: events missing
    or different on either side (exit 0 consistent, 1 differences or a kept witnessing
    refusal, 2 incomplete)."""
    from controller.client.audit import reconcile

    found = with_client(opts, lambda client: reconcile(client, agent))
    raise _show_reconciliation(opts, agent, found)


RECONCILE_EXIT = {"consistent": 0, "different": 1, "refused": 1, "incomplete": 2}


def counts_differ_by(found: Any) -> str:
    """Why the agent's and the controller's operation counts may differ, in words (empty if
    nothing to say); ``found`` has ``not_relayed`` and ``pending``."""
    notes = []
    if found.not_relayed:
        notes.append(f"{found.not_relayed} controller event(s) never reached the agent's "
                     "log (unreachable, no answer or cancelled: no receipt)")
    if found.pending:
        notes.append(f"{found.pending} receipted operation(s) not witnessed yet")
    return "; ".join(notes)


def _show_reconciliation(opts: Options, agent: str, found: Any) -> typer.Exit:
    differences = [{"kind": d.kind, "session": d.session_id, "seq": d.seq,
                    "agent_index": d.agent_index, "event_id": d.event_id, "detail": d.detail}
                   for d in found.differences]
    if opts.json:
        out.emit_json({"agent": agent, "status": found.status,
                       "mirrored_size": found.mirrored_size,
                       "cosigned_size": found.cosigned_size,
                       "witnessed_at": found.witnessed_at or None,
                       "agent_log_key": found.agent_log_key or None,
                       "last_refusal": found.last_refusal or None,
                       "agent_operations": found.agent_operations,
                       "controller_operations": found.controller_operations,
                       "pending": found.pending, "not_relayed": found.not_relayed,
                       "differences": differences})
    else:
        status = found.status
        if found.status == "refused":
            status = f"refused: {found.last_refusal}"
        elif found.last_refusal and found.status == "incomplete":
            status = f"incomplete: {found.last_refusal}"
        out.fields([("Agent", agent), ("Status", status),
                    ("Mirrored", f"{found.mirrored_size} entries (cosigned size "
                     f"{found.cosigned_size})"),
                    ("Agent log key", found.agent_log_key or "-"),
                    ("Operations", f"agent {found.agent_operations}, controller "
                     f"{found.controller_operations}, pending {found.pending}"),
                    ("Counts differ by", counts_differ_by(found) or "-"),
                    ("Last refusal", found.last_refusal or "-")])
        out.table("Differences", ("Kind", "Session", "Seq", "Agent entry", "Event", "Detail"),
                  [(d["kind"], d["session"], d["seq"], d["agent_index"] or "-",
                    d["event_id"] or "-", d["detail"]) for d in differences])
    return typer.Exit(RECONCILE_EXIT.get(found.status, USAGE))


@command(audit_app, "export")
def audit_export(
    opts: Options,
    case: Annotated[str, typer.Option(help="The case to export.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The bundle file to write.")],
    key: KeyOpt = None,
    force: ForceOpt = False,
) -> None:
    """Write a case's evidence bundle (records, proofs, checkpoints, envelopes)."""
    _refuse_existing(output, force)
    pinned, data, asked = _fetch(opts, key, case=case)
    _write(output, data, force)
    evidence, report = _check(data, pinned, asked=asked)
    typer.echo(f"wrote {output}: {report.records} records, checkpoint size {report.size}",
               err=opts.json)  # with --json, stdout is the report alone
    raise _show(opts, evidence, report)


@command(audit_app, "prove")
def audit_prove(
    opts: Options,
    event: Annotated[int, typer.Argument(help="The event's leaf index.", min=0,
                                         max=2**63 - 1)],
    output: Annotated[Path, typer.Option("-o", "--output", help="The proof file to write.")],
    key: KeyOpt = None,
    force: ForceOpt = False,
) -> None:
    """Write a self-contained proof that one event is in the log."""
    _refuse_existing(output, force)
    pinned, data, asked = _fetch(opts, key, event=event)
    _write(output, data, force)
    evidence, report = _check(data, pinned, asked=asked)
    out.note(f"wrote {output}")
    raise _show(opts, evidence, report)


@command(audit_app, "report")
def audit_report(
    opts: Options,
    case: Annotated[str, typer.Option(help="The case to report on.")],
    html: Annotated[Path, typer.Option("--html", help="The HTML file to write.")],
    key: KeyOpt = None,
    force: ForceOpt = False,
) -> None:
    """Write an HTML timeline of a case's consent and actions, with its verification."""
    from controller.audit.report import render

    _refuse_existing(html, force)
    pinned, data, asked = _fetch(opts, key, case=case)
    evidence, report = _check(data, pinned, asked=asked)
    _write(html, render(evidence, report, f"Case {case}").encode(), force)
    if opts.json:
        out.emit_json({"file": str(html), "status": report.status, "records": report.records})
    else:
        out.note(f"wrote {html} ({report.status})")
    raise typer.Exit(EXIT[report.status])


@command(audit_app, "checkpoint")
def audit_checkpoint(
    opts: Options,
    save: Annotated[Path, typer.Option(help="Where to keep the checkpoint.")],
    key: KeyOpt = None,
    force: ForceOpt = False,
) -> None:
    """Fetch the latest checkpoint, verify it with the pinned key, and keep it. A file
    there already is replaced only if it is a checkpoint of this log no larger (or with
    --force): a kept checkpoint is what a later 'audit verify --since' checks against."""
    from controller.client.audit import checkpoint_size, pinned_key

    async def work(client: ControllerClient) -> tuple[Any, bytes]:
        return await pinned_key(opts.home, client, key), await client.log_checkpoint()

    pinned, note = with_client(opts, work)
    checkpoint = checkpoint_size(note, pinned.key)
    if not force and (save.exists() or save.is_symlink()):
        _may_replace_kept(save, checkpoint, pinned.key)
    _write(save, note, True)  # the checkpoint kept is updated in place
    if opts.json:
        out.emit_json({"size": checkpoint.size, "root": checkpoint.root_hash.hex(),
                       "file": str(save)})
    else:
        out.note(f"kept checkpoint size {checkpoint.size}, root {checkpoint.root_hash.hex()} "
                 f"in {save}")


def _may_replace_kept(path: Path, new: Any, key: tlog.NoteVerifier) -> None:
    """A usage error unless ``path`` holds a checkpoint of this log no larger than ``new``."""
    from controller.client.audit import checkpoint_size
    from controller.client.errors import InputError

    if path.is_symlink() or not path.is_file():
        raise _usage(f"{path} is not a file this command wrote: pass --force to replace it")
    try:
        kept = checkpoint_size(_read(path)[:64 * 1024], key)
    except InputError as exc:
        raise _usage(f"{path} is not a checkpoint of this log ({exc}): pass --force to "
                     f"replace it") from exc
    if kept.size > new.size:
        raise _usage(f"the log is smaller ({new.size}) than the checkpoint kept in {path} "
                     f"({kept.size}): check it with 'audit verify --full --since {path}'; "
                     f"nothing was replaced")


def _kept(path: Path) -> bytes:
    """A checkpoint saved by ``audit checkpoint --save``, refused here if it cannot be one
    (the controller would refuse it too, in its own terms)."""
    import tlog

    data = _read(path)
    refusal = f"--since {path} is not a saved checkpoint (see audit checkpoint --save)"
    if len(data) > 64 * 1024:  # a signed checkpoint is a few hundred bytes
        raise _usage(refusal)
    try:
        tlog.parse_checkpoint(data.decode().split("\n\n", 1)[0] + "\n")
    except (UnicodeDecodeError, tlog.TlogError) as exc:
        raise _usage(refusal) from exc
    return data


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _usage(f"cannot read {path}: {exc.strerror}") from exc


def _write(path: Path, data: bytes, force: bool) -> None:
    """``path`` written whole or not at all (see write_whole); a failure is a usage error.
    The mode follows the umask, as for any file the user writes."""
    try:
        write_whole(path, data, force=force)
    except FileExistsError as exc:
        raise _usage(f"{path} exists: pass --force to replace it") from exc
    except OSError as exc:
        raise _usage(f"cannot write {path}: {exc.strerror}") from exc
