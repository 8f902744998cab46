"""Support cases: open, list, show, close."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated

import typer

from controller.cli import _output as out
from controller.cli._app import Options, command, group
from controller.cli._run import with_client
from controller.cli._tables import requests_table, sessions_table

if TYPE_CHECKING:
    from rmaint.v1 import controller_pb2 as pb

case_app = group("case")


class Status(enum.StrEnum):
    open = "open"
    closed = "closed"


def _case_fields(case: pb.Case) -> list[tuple[str, str]]:
    return [
        ("Case", case.case_id), ("Customer", case.customer_id), ("Title", case.title),
        ("Status", case.status), ("Assignee", case.assignee or "-"),
        ("Opened", out.when(case.opened_at)), ("Closed", out.when(case.closed_at)),
        ("Resolution", case.resolution or "-"),
    ]


def _print_case(opts: Options, case: pb.Case) -> None:
    if opts.json:
        out.emit_json(out.message_data(case))
    else:
        out.fields(_case_fields(case))


@command(case_app, "open")
def case_open(
    opts: Options,
    customer: Annotated[str, typer.Option(help="Customer of the case.")],
    title: Annotated[str, typer.Option(help="Short description of the fault.")],
    assign: Annotated[str, typer.Option(
        help="Engineer to assign (an engineer may leave it out to take the case).")] = "",
) -> None:
    """Open a support case for a customer."""
    _print_case(opts, with_client(opts, lambda c: c.open_case(customer, title, assign)))


@command(case_app, "list")
def case_list(
    opts: Options,
    status: Annotated[Status | None, typer.Option(help="Only open or closed cases.")] = None,
    customer: Annotated[str, typer.Option(help="Only this customer's cases.")] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000,
                                       help="Show the newest N cases.")] = 50,
) -> None:
    """List cases, newest first."""
    wanted = status.value if status else ""
    cases, total = with_client(opts, lambda c: c.list_cases(wanted, customer, limit))
    if opts.json:
        out.emit_json(out.messages_data(cases))
        return
    out.table("Cases", ("Case", "Customer", "Title", "Status", "Assignee", "Opened"),
              ((c.case_id, c.customer_id, c.title, c.status, c.assignee or "-",
                out.when(c.opened_at)) for c in cases))
    if total > len(cases):
        out.note(f"the {len(cases)} newest of {total} cases: --limit shows more "
                 "(up to 1000), --status and --customer fewer")


@command(case_app, "show")
def case_show(
    opts: Options, case_id: Annotated[str, typer.Argument(metavar="CASE", help="Case id.")],
) -> None:
    """Show a case with its access requests and sessions."""
    reply = with_client(opts, lambda c: c.get_case(case_id))
    if opts.json:
        out.emit_json(out.message_data(reply))
        return
    out.fields(_case_fields(reply.case))
    requests_table(reply.requests)
    sessions_table(reply.sessions)


@command(case_app, "close")
def case_close(
    opts: Options,
    case_id: Annotated[str, typer.Argument(metavar="CASE", help="Case id.")],
    resolution: Annotated[str, typer.Option(help="How the fault was resolved.")],
) -> None:
    """Close a case; its open sessions are closed with it."""
    _print_case(opts, with_client(opts, lambda c: c.close_case(case_id, resolution)))
