"""Status and SHA-256 of files under the roots the customer allowlisted on the agent."""

from __future__ import annotations

from typing import Annotated

import typer

from controller.cli import _diag_render as render
from controller.cli._app import Options, command, group
from controller.cli._operation import AgentOpt, CaseOpt, SessionOpt, run_operation

files_app = group("files")

# A path on the agent's host: passed as given, never resolved here.
PathArg = Annotated[str, typer.Argument(
    help="Absolute path on the agent's host, under a root of its [diag] file_roots.",
    show_default=False)]


@command(files_app, "stat")
def files_stat(opts: Options, path: PathArg, session: SessionOpt = "", case: CaseOpt = "",
               agent: AgentOpt = "") -> None:
    """Type, size, permissions, owner and times of a file or directory."""
    run_operation(opts, "files.stat", {"path": path}, render.render_stat,
                  (session, case, agent))


@command(files_app, "hash")
def files_hash(opts: Options, path: PathArg, session: SessionOpt = "", case: CaseOpt = "",
               agent: AgentOpt = "") -> None:
    """SHA-256 of a regular file (up to the agent's [diag] max_hash_bytes)."""
    run_operation(opts, "files.hash", {"path": path}, render.render_hash,
                  (session, case, agent))
