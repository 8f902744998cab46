"""The operations the agent offers: one table of name -> scope, limits and implementation.

Parameters are validated strictly before anything runs: unknown keys, wrong types and
out-of-range values raise :class:`~agent.errors.InvalidParams` with a message naming
the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent import diagnostics
from agent.errors import InvalidParams

Params = Mapping[str, Any]
Runner = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class OperationSpec:
    """One operation. ``prepare`` validates parameters and returns what runs them."""

    name: str
    scope: str
    writes: bool
    deadline: float
    output_limit: int
    prepare: Callable[[Params], Runner]


def _no_params(name: str, params: Params) -> None:
    if params:
        raise InvalidParams(f"{name} takes no parameters, got: {', '.join(sorted(params))}")


def _prepare_system(params: Params) -> Runner:
    _no_params("diag.system", params)
    return diagnostics.system


def _prepare_disks(params: Params) -> Runner:
    _no_params("diag.disks", params)
    return diagnostics.disks


def _prepare_processes(params: Params) -> Runner:
    query = parse_process_query(params)
    return lambda: diagnostics.processes(query)


def parse_process_query(params: Params) -> diagnostics.ProcessQuery:
    """``by`` in cpu|memory, ``limit`` integer 1..100, ``interval`` seconds 0..10."""
    unknown = set(params) - {"by", "limit", "interval"}
    if unknown:
        raise InvalidParams(f"diag.processes: unknown parameter {', '.join(sorted(unknown))}")
    default = diagnostics.ProcessQuery()
    by = params.get("by", default.by)
    if by not in ("cpu", "memory"):
        raise InvalidParams('diag.processes: by must be "cpu" or "memory"')
    limit = params.get("limit", default.limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidParams("diag.processes: limit must be an integer from 1 to 100")
    interval = params.get("interval", default.interval)
    if isinstance(interval, bool) or not isinstance(interval, int | float) \
            or not math.isfinite(interval) or not 0 <= interval <= 10:
        raise InvalidParams("diag.processes: interval must be a number of seconds from 0 to 10")
    return diagnostics.ProcessQuery(by=by, limit=limit, interval=float(interval))


CATALOGUE: dict[str, OperationSpec] = {
    spec.name: spec for spec in (
        OperationSpec("diag.system", "diag.read", False, 10.0, 64 * 1024, _prepare_system),
        OperationSpec("diag.disks", "diag.read", False, 10.0, 256 * 1024, _prepare_disks),
        OperationSpec("diag.processes", "diag.read", False, 20.0, 512 * 1024,
                      _prepare_processes),
    )
}


def scope_of(name: str) -> str | None:
    """The scope an operation needs, or None for an operation the agent does not offer."""
    spec = CATALOGUE.get(name)
    return spec.scope if spec is not None else None
