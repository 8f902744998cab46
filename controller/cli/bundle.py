"""Support bundles: collected on the agent (``bundle.create``, scope diag.read), stored by the
controller by SHA-256 and attached to the case; fetched and checked here."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from controller.cli import _output as out
from controller.cli._app import Options, command, fail, group
from controller.cli._bundle_verify import verify, verify_command
from controller.cli._operation import AgentOpt, CaseOpt, SessionOpt
from controller.cli._run import with_client, with_workflow
from controller.cli._stream import receipt_line

if TYPE_CHECKING:
    from controller.client.api import ControllerClient
    from controller.client.workflow import EngineerWorkflow, OperationResult
    from rmaint.v1 import controller_pb2 as pb

bundle_app = group("bundle")

BUNDLE_SECTIONS = ("system", "cpu", "memory", "disks", "network", "processes", "services",
                   "clock", "configs", "logs")


@command(bundle_app, "create")
def bundle_create(
    opts: Options,
    include: Annotated[str, typer.Option(
        help=f"Comma-separated sections from: {', '.join(BUNDLE_SECTIONS)}. Default: every "
             "section the grant and agent allow (logs need diag.logs; configs need diag.files "
             "and the agent's [bundle] configs = true); naming one not allowed is refused.")] = "",
    log_lines: Annotated[int, typer.Option(
        min=1, max=10000, help="Lines of each allowlisted log's tail.")] = 1000,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Collect a support bundle on the agent (redacted there); the controller stores it by
    its SHA-256 and attaches it to the case. Prints the hash. Needs diag.read; its manifest
    lists the sections withheld and why."""
    params: dict[str, Any] = {"logs_lines": log_lines}
    if include:
        params["include"] = [s.strip() for s in include.split(",") if s.strip()]
    progress = _Progress()
    try:
        case_id, result = _create(opts, params, progress.add, (session, case, agent))
    finally:
        progress.end()
    stream = result.result.get("stream", {}) if isinstance(result.result, dict) else {}
    if opts.json:
        out.emit_json({"sha256": stream.get("sha256"), "bytes": stream.get("bytes"),
                       "case_id": case_id, "event_id": result.event_id,
                       "result": result.result})
    else:
        out.note(f"bundle sha256:{stream.get('sha256')} ({out.size(stream.get('bytes', 0))}) "
                 f"attached to case {case_id}")
    receipt_line(opts, result)


def _create(opts: Options, params: dict[str, Any], on_part: Callable[[bytes], Awaitable[None]],
            where: tuple[str, str, str]) -> tuple[str, OperationResult]:
    """Run ``bundle.create`` in the session ``where`` names; the session's case and the
    result, once its receipt and the parts received agree."""
    async def work(workflow: EngineerWorkflow) -> tuple[str, OperationResult]:
        state = await workflow.session_for(*(w or None for w in where))
        return state.case_id, await workflow.run_stream(state, "bundle.create", params, on_part)

    return with_workflow(opts, work)


class _Progress:
    """Bytes received so far, on stderr when it is a terminal."""

    def __init__(self) -> None:
        self.size = 0
        self._shown = sys.stderr.isatty()

    async def add(self, part: bytes) -> None:
        self.size += len(part)
        if self._shown:
            sys.stderr.write(f"\rreceiving bundle: {out.size(self.size)}   ")
            sys.stderr.flush()

    def end(self) -> None:
        if self._shown and self.size:
            sys.stderr.write("\n")


@command(bundle_app, "get")
def bundle_get(
    opts: Options,
    case: Annotated[str, typer.Option("--case", help="The case the bundle is attached to.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.",
                                         show_default=False)],
    sha256: Annotated[str, typer.Option(
        "--sha256", help="The bundle's SHA-256 (default: the case's newest).")] = "",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Fetch a case's bundle into a file, checking its SHA-256 while writing; the file
    appears complete or not at all."""
    if not force and os.path.lexists(output):
        raise fail(f"{output} exists: pass --force to replace it")
    bundle = with_client(opts, lambda c: fetch_bundle(c, case, sha256.lower(), output,
                                                      force=force))
    if opts.json:
        out.emit_json({**out.message_data(bundle), "path": str(output)})
        return
    out.note(f"wrote {output}: {out.size(bundle.size)}, sha256:{bundle.sha256} (checked)")


async def fetch_bundle(client: ControllerClient, case_id: str, sha256: str, path: Path, *,
                       force: bool) -> pb.Bundle:
    """Stream the bundle into a temporary file next to ``path``, check its size and
    SHA-256 against what the controller attached, then move it into place (without
    ``force``, never over a file that appeared meanwhile)."""
    from controller.client.errors import BadAnswer

    digest, size, bundle = hashlib.sha256(), 0, None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:  # the user named ``path``, not our temporary file
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as file:
            async for chunk in client.bundle_chunks(case_id, sha256):
                bundle = chunk.bundle
                file.write(chunk.data)
                digest.update(chunk.data)
                size += len(chunk.data)
            file.flush()
            os.fsync(file.fileno())
        if bundle is None or (sha256 and bundle.sha256 != sha256):
            raise BadAnswer("the controller sent no bundle or another one than asked for")
        if digest.hexdigest() != bundle.sha256 or size != bundle.size:
            raise BadAnswer(f"the bundle received does not match its SHA-256 "
                            f"{bundle.sha256}: nothing was written")
        if force:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # fails if the name exists: never overwrites
            except FileExistsError as exc:
                raise FileExistsError(exc.errno, exc.strerror, str(path)) from exc
            os.unlink(temporary)
        _sync_directory(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return bundle


def _sync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@command(bundle_app, "list")
def bundle_list(
    opts: Options,
    case: Annotated[str, typer.Option("--case", help="The case.")],
) -> None:
    """The support bundles attached to a case, oldest first."""
    found = with_client(opts, lambda c: c.get_case(case)).bundles
    if opts.json:
        out.emit_json(out.messages_data(found))
        return
    out.table(f"Bundles of case {case}", ["SHA-256", "Size", "Created", "Session", "Event",
                                          "Agent", "Stored"],
              [(b.sha256, out.size(b.size), out.when(b.created_at), b.session_id, b.event_id,
                b.agent_id, "yes" if b.stored else "removed") for b in found])


# -- bundle verify: checked offline, see controller.bundle_verify (kept apart on purpose) --

@verify_command(bundle_app, "verify")
def bundle_verify(
    opts: Options,
    file: Annotated[Path, typer.Argument(help="A bundle file (as bundle get wrote it).",
                                         show_default=False)],
    sha256: Annotated[str, typer.Option(
        "--sha256", help="The SHA-256 the whole archive must have (see bundle list).")] = "",
) -> None:
    """Check a bundle offline: the manifest first, every member listed once with its size
    and SHA-256, nothing extra, missing or unsafe. Exit 0 intact, 1 integrity failure
    (the first bad member is named), 3 usage error."""
    raise verify(opts, file, sha256)
