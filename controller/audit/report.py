"""A readable HTML timeline of a case's consent and actions, from verified evidence.

Every value is escaped: records hold text chosen by engineers, customers and agents. Pure.
"""

from __future__ import annotations

import datetime as dt
import html
import json

from controller.audit.errors import BadRecord
from controller.audit.evidence import Evidence
from controller.audit.records import decode
from controller.audit.verify import Report

_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
          ".failed{color:#b00}.verified{color:#070}.incomplete{color:#a60}")


def render(evidence: Evidence, report: Report, title: str) -> str:
    """The HTML page (a complete document)."""
    rows = "".join(_row(r.index, r.record) for r in sorted(evidence.records,
                                                         key=lambda r: r.index))
    faults = "".join(f"<li>leaf {_e(f.index)} ({_e(f.kind)}): {_e(f.what)}</li>"
                     for f in report.faults)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>"
            f"<p class=\"{_e(report.status)}\">Verification: {_e(report.status)} — "
            f"{report.records} records, checkpoint size {report.size}, root "
            f"{_e(report.root_hash.hex())}</p>"
            f"{'<ul>' + faults + '</ul>' if faults else ''}"
            "<table><tr><th>Leaf</th><th>Time (UTC)</th><th>Event</th><th>Session</th>"
            f"<th>Actor</th><th>Details</th></tr>{rows}</table></body></html>\n")


def _row(index: int, record: bytes) -> str:
    try:
        event = decode(record)
    except BadRecord:
        return f"<tr><td>{index}</td><td colspan=\"5\">unreadable record</td></tr>"
    when = dt.datetime.fromtimestamp(event.at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    details = json.dumps(dict(event.details), sort_keys=True, ensure_ascii=False)
    return (f"<tr><td>{index}</td><td>{when}</td><td>{_e(event.kind)}</td>"
            f"<td>{_e(event.session or '')}</td><td>{_e(event.actor)}</td>"
            f"<td>{_e(details)}</td></tr>")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
