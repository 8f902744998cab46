"""systemd service units and their states (scope ``diag.read``).

Where systemd is not the running init (no ``/run/systemd/system``), the result says so:
``{"available": false, "reason": "systemd is not running on this host"}``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.diag.params import ParamReader, Params

SYSTEMD_RUNNING = Path("/run/systemd/system")
MAX_UNITS = 2000
SYSTEMCTL_TIMEOUT = 10.0
_MAX_OUTPUT = 8 * 1024 * 1024
_LIST = ("list-units", "--type=service", "--all", "--no-pager", "--plain")
# No colours, no pager, no translated column values.
_ENV = {"LANG": "C", "LC_ALL": "C", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
NOT_RUNNING = "systemd is not running on this host"


@dataclass(frozen=True)
class ServicesQuery:
    """Validated parameters of ``diag.services``."""

    failed_only: bool = False


def parse_services(params: Params) -> ServicesQuery:
    """``failed_only``: only units whose active state is ``failed`` (default false)."""
    return ServicesQuery(ParamReader("diag.services", params, {"failed_only"})
                         .boolean("failed_only", False))


class _Unavailable(Exception):
    """systemctl cannot tell; the message is the result's ``reason``."""


async def services(query: ServicesQuery, *, marker: Path = SYSTEMD_RUNNING) -> dict[str, Any]:
    """Service units with load, active and sub state, counted by active state."""
    try:
        units = await _list_units(marker)
    except _Unavailable as exc:
        return {"available": False, "reason": str(exc)}
    counts = Counter(unit["active"] for unit in units)
    shown = [u for u in units if not query.failed_only or u["active"] == "failed"]
    return {"available": True, "units": shown[:MAX_UNITS], "units_truncated": len(shown) > MAX_UNITS,
            "total_units": len(units), "units_by_active_state": dict(sorted(counts.items()))}


async def _list_units(marker: Path) -> list[dict[str, str]]:
    if not await asyncio.to_thread(marker.is_dir):
        raise _Unavailable(NOT_RUNNING)
    systemctl = shutil.which("systemctl", path=_ENV["PATH"])
    if systemctl is None:
        raise _Unavailable("systemctl is not installed")
    code, out, err = await _run(systemctl, *_LIST, "--output=json")
    if code == 0:
        try:
            return parse_json(out)
        except ValueError:
            pass  # a systemd too old for --output=json may ignore it: read the table
    code, out, err = await _run(systemctl, *_LIST, "--no-legend")
    if code != 0:
        raise _Unavailable(f"systemctl failed: {err.decode(errors='replace').strip()[:200]}")
    return parse_plain(out)


async def _run(*argv: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=_ENV, limit=_MAX_OUTPUT)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), SYSTEMCTL_TIMEOUT)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode or 0, out, err


def parse_json(output: bytes) -> list[dict[str, str]]:
    """Units from ``systemctl list-units --output=json``; ValueError if it is not that."""
    data = json.loads(output)
    if not isinstance(data, list) or not all(isinstance(u, dict) for u in data):
        raise ValueError("not a list of units")
    return [_unit(u.get("unit"), u.get("load"), u.get("active"), u.get("sub"),
                  u.get("description")) for u in data]


def parse_plain(output: bytes) -> list[dict[str, str]]:
    """Units from the plain table: ``UNIT LOAD ACTIVE SUB DESCRIPTION...`` per line."""
    units = []
    for line in output.decode(errors="replace").splitlines():
        fields = line.split(None, 4)
        if len(fields) >= 4:
            units.append(_unit(*fields, *([""] if len(fields) == 4 else [])))
    return units


def _unit(unit: Any, load: Any, active: Any, sub: Any, description: Any) -> dict[str, str]:
    return {"unit": str(unit or ""), "load": str(load or ""), "active": str(active or ""),
            "sub": str(sub or ""), "description": str(description or "")}

