"""Data correction on a customer's allowlisted data sources, as signed operations in a session.

No SQL is ever sent: queries and plans are structured, and the agent builds the
statements from its customer's allowlist and the live catalog. A preview returns a
digest; the customer reviews it on their host and consents to that digest
(``rmagent approve-change``); only then does ``rmctl data apply DIGEST`` run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from controller.cli import _output as out
from controller.cli import _values
from controller.cli._app import Options, command, group
from controller.cli._operation import AgentOpt, CaseOpt, SessionOpt, run_operation
from rmaint.text import printable

data_app = group("data")
SourceArg = Annotated[str, typer.Argument(help="The data source, as the customer named it.")]
DigestArg = Annotated[str, typer.Argument(help="The change's full digest (sha256:...).",
                                           callback=_values.change_digest)]
_OPS = ("!=", ">=", "<=", "=", ">", "<")  # longest first: "a>=1" is ">=" not ">"


def _where(text: str) -> dict[str, Any]:
    """``col=val`` (or != < <= > >=) as a filter; the value is JSON if it parses, else text."""
    for op in _OPS:
        column, found, value = text.partition(op)
        if found and column:
            return {"column": column.strip(), "op": op, "value": _value(value)}
    raise typer.BadParameter(f"{text!r}: expected COLUMN=VALUE (or != < <= > >=)")


def _value(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, bool | int | float | str) else text


def _order(text: str) -> dict[str, Any]:
    return {"column": text.lstrip("-"), "desc": text.startswith("-")}


@command(data_app, "describe")
def data_describe(opts: Options, source: SourceArg, session: SessionOpt = "",
                  case: CaseOpt = "", agent: AgentOpt = "") -> None:
    """The allowlisted tables and columns of a data source (masked columns marked)."""
    run_operation(opts, "data.describe", {"source": source}, _show_schema,
                  (session, case, agent))


@command(data_app, "query")
def data_query(
    opts: Options, source: SourceArg,
    table: Annotated[str, typer.Argument(help="An allowlisted table.")],
    where: Annotated[list[str] | None, typer.Option(
        "--where", help="COLUMN=VALUE (or != < <= > >=); repeat to AND them.")] = None,
    columns: Annotated[str, typer.Option(
        "--columns", help="Comma-separated columns; default all allowlisted.")] = "",
    order: Annotated[list[str] | None, typer.Option(
        "--order", help="Column to sort by, '-column' for descending; repeatable.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many rows.")] = 50,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Rows of an allowlisted table; masked columns come back as ***."""
    params: dict[str, Any] = {"source": source, "table": table, "limit": limit,
                              "where": [_where(w) for w in where or []],
                              "order": [_order(o) for o in order or []]}
    if columns:
        params["columns"] = [c.strip() for c in columns.split(",") if c.strip()]
    run_operation(opts, "data.query", params, _show_rows, (session, case, agent))


@command(data_app, "preview")
def data_preview(
    opts: Options, source: SourceArg,
    plan: Annotated[Path, typer.Option(
        "--plan", exists=True, dir_okay=False,
        help="JSON plan: {\"updates\": [{table, key, set, expect?}], "
             "\"inserts\": [{table, row}]}.")],
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Run a plan in a transaction that is rolled back; show before/after and the digest."""
    try:
        body = json.loads(plan.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"{plan}: not a JSON plan: {exc}") from exc
    run_operation(opts, "data.preview", {"source": source, "plan": body}, _show_change,
                  (session, case, agent))


@command(data_app, "apply")
def data_apply(opts: Options, digest: DigestArg, session: SessionOpt = "",
               case: CaseOpt = "", agent: AgentOpt = "") -> None:
    """Apply a previewed change the customer consented to, exactly as previewed."""
    run_operation(opts, "data.apply", {"digest": digest}, _show_applied,
                  (session, case, agent))


@command(data_app, "undo")
def data_undo(opts: Options, digest: DigestArg, session: SessionOpt = "",
              case: CaseOpt = "", agent: AgentOpt = "") -> None:
    """Preview the undo of an applied change (it needs its own consent, then apply)."""
    run_operation(opts, "data.undo", {"digest": digest}, _show_change, (session, case, agent))


def _show_schema(result: dict[str, Any]) -> None:
    out.note(f"{result['source']} ({result['engine']}), at most {result['row_limit']} rows "
             f"per query or plan")
    for table in result["tables"]:
        rows = [(c["name"], c["type"], "yes" if c["nullable"] else "no",
                 "key" if c["name"] in table["primary_key"] else "",
                 "masked" if c["masked"] else "") for c in table["columns"]]
        title = table["name"] + ("" if table["writable"] else " (read only)")
        out.table(title, ("Column", "Type", "Null", "Key", "Masked"), rows)


def _show_rows(result: dict[str, Any]) -> None:
    rows = [[_cell(row.get(c)) for c in result["columns"]] for row in result["rows"]]
    out.table(f"{result['table']} ({result['count']} rows)", result["columns"], rows)


def _show_change(result: dict[str, Any]) -> None:
    if result.get("status") == "refused":
        out.note(f"undo refused: {printable(str(result['reason']))}")
        rows = [(f"{r['table']} {_cell(r['key'])}", col, _cell((r["before"] or {}).get(col)),
                 _cell((r["after"] or {}).get(col)), _cell((r["current"] or {}).get(col)))
                for r in result["rows"] for col in _columns(r["before"], r["after"],
                                                            r["current"])]
        out.table("rows changed since the apply", ("Row", "Column", "Before", "After",
                                                   "Current"), rows)
        return
    counts = result["counts"]
    lines = [line for row in result["rows"] for line in _lines(row)]
    out.table("change", ("Row", "Column", "Before", "After"), lines)
    if any(MASK_CELL in line[2:] for line in lines):
        out.note(f"{MASK_CELL}: a masked column; its values stay on the agent, where the "
                 "customer reviews them")
    for effect in result["side_effects"]:
        out.note(f"side effect: {effect['rows_changed']} other row(s) of {effect['table']} "
                 "change too (triggers or cascades)")
    out.note(f"{counts['updates']} update(s), {counts['inserts']} insert(s), "
             f"{counts['deletes']} delete(s); expires {out.when(result['expires_at'])}")
    out.note(f"digest {result['digest']}")
    out.note("the customer consents with: rmagent approve-change " + result["digest"][:19])


def _show_applied(result: dict[str, Any]) -> None:
    counts = result["counts"]
    out.note(f"applied {result['digest']}: {counts['updates']} update(s), "
             f"{counts['inserts']} insert(s), {counts['deletes']} delete(s)")


def _lines(row: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    before, after = row["before"], row["after"]
    label = f"{row['kind']} {row['table']} {_cell(row['key'])}"
    lines = []
    for column in _columns(before, after):
        old, new = (before or {}).get(column), (after or {}).get(column)
        if before is not None and after is not None and old == new and old != MASK:
            continue  # unchanged; a masked column may have changed: the customer sees it
        lines.append((label, column, "-" if before is None else _cell(old),
                      "-" if after is None else _cell(new)))
        label = ""
    return lines


def _columns(*images: dict[str, Any] | None) -> list[str]:
    return list(dict.fromkeys(c for image in images if image for c in image))


MASK = "***"  # what the agent sends for a masked column's value
MASK_CELL = json.dumps(MASK)


def _cell(value: Any) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)
