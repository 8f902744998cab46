"""``rmctl diag watch``: the samples of ``diag.watch`` shown as they arrive.

On a terminal, a live table of the latest samples; elsewhere one plain line per sample;
with ``--json``, each sample's JSON line exactly as the agent sent it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from controller.cli import _output as out
from controller.cli import _watch_render as render
from controller.cli._app import Options
from controller.cli._stream import receipt_line, run_streaming


def watch(opts: Options, params: dict[str, Any], where: tuple[str, str, str]) -> None:
    rows = render.WatchRows(params["metrics"])
    columns = render.headings(params["metrics"])
    console = out.console()
    live: Any = None
    shown: list[list[str]] = []

    async def on_part(part: bytes) -> None:
        nonlocal live
        if opts.json:
            sys.stdout.write(part.decode("utf-8", "replace"))
            sys.stdout.flush()
            return
        try:
            sample = json.loads(part)
        except ValueError:
            return  # the receipt check at the end reports a stream that is not the agent's
        row = rows.row(sample if isinstance(sample, dict) else {})
        if not console.is_terminal:
            if not shown:
                out.note(render.plain_line(columns, columns))
            shown.append(row)
            out.note(render.plain_line(columns, row))
            return
        shown.append(row)
        del shown[:-render.ROWS_SHOWN]
        if live is None:
            from rich.live import Live

            live = Live(_table(columns, shown), console=console, auto_refresh=False)
            live.start()
        live.update(_table(columns, shown), refresh=True)

    try:
        result = run_streaming(opts, "diag.watch", params, on_part, where)
    finally:
        if live is not None:
            live.stop()
    summary = result.result if isinstance(result.result, dict) else {}
    if not opts.json:
        hidden = summary.get("redactions")
        if isinstance(hidden, int) and hidden:
            out.note(f"{hidden} value{'s' if hidden != 1 else ''} hidden by redaction")
        out.note(f"{summary.get('samples', len(shown))} samples")
    receipt_line(opts, result)


def _table(columns: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(title="Watch", title_justify="left", header_style="bold")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index in (1,) or "process" in column
                         or "fs" in column else "right")
    for row in rows:
        table.add_row(*row)
    return table
