"""The operations the agent offers: one table of name -> scope, limits and implementation.

Parameters are validated strictly before anything runs: unknown keys, wrong types and
out-of-range values, and logs, paths or connect targets that the customer did not
allowlist, raise :class:`~agent.errors.InvalidParams` with a message naming the
parameter. Results are JSON-ready dicts; their shapes are described by each module of
:mod:`agent.diag`.

The table depends on the customer's ``[diag]`` allowlists: :func:`build_catalogue` binds
them (the daemon passes ``build_catalogue(config.diag)`` to the dispatcher).
:data:`CATALOGUE` is the table of an agent without a ``[diag]`` section, which refuses
every log, path and connect target.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from agent.bundle.operation import BundleSettings, bundle_spec
from agent.context import OperationContext
from agent.diag import (
    connect,
    database,
    files,
    logs,
    logsearch,
    network,
    processes,
    services,
    system,
    watch,
)
from agent.diag.params import ParamReader
from agent.diag.policy import DiagConfig
from agent.errors import InvalidParams

if TYPE_CHECKING:  # SQLAlchemy is imported only by an agent with data sources
    from agent.data.ops import DataOperations

Params = Mapping[str, Any]
Runner = Callable[[], Awaitable[dict[str, Any]]]
# A streaming operation hands each part of its output to ``Emit`` as it is ready (a watch
# sample, a chunk of an archive; at most PART_LIMIT bytes each) and returns its summary.
Emit = Callable[[bytes], Awaitable[None]]
StreamRunner = Callable[[Emit], Awaitable[dict[str, Any]]]
Q = TypeVar("Q")
KIB = 1024
MIB = 1024 * KIB
PART_LIMIT = 1 * MIB
WATCH_OUTPUT_LIMIT = 64 * MIB  # all samples of one diag.watch together


@dataclass(frozen=True)
class OperationSpec:
    """One operation. ``prepare`` validates parameters and returns what runs them.

    Operations that must know whom they run for (writes: previews are stored under their
    grant, case and engineer key) set ``prepare_in_context`` instead; the dispatcher calls
    :meth:`runner`, which picks the right one.

    Streaming operations (a watch, a support bundle) set ``prepare_stream``: their output
    is a sequence of parts sent as they come, ``output_limit`` bounds all parts together
    and ``deadline`` the whole run; the receipt binds the SHA-256 of the parts in order.
    """

    name: str
    scope: str
    writes: bool
    deadline: float
    output_limit: int
    prepare: Callable[[Params], Runner]
    prepare_in_context: Callable[[Params, OperationContext], Runner] | None = None
    prepare_stream: Callable[[Params, OperationContext], StreamRunner] | None = None

    @property
    def streams(self) -> bool:
        return self.prepare_stream is not None

    def runner(self, params: Params, context: OperationContext) -> Runner:
        if self.prepare_in_context is not None:
            return self.prepare_in_context(params, context)
        return self.prepare(params)


def _needs_context(name: str) -> Callable[[Params], Runner]:
    def prepare(params: Params) -> Runner:
        raise InvalidParams(f"{name}: runs only through the dispatcher")
    return prepare


def in_context(name: str, scope: str, writes: bool,
               prepare: Callable[[Params, OperationContext], Runner], *,
               deadline: float = 25.0, output_limit: int = 4 * MIB) -> OperationSpec:
    """An operation that runs only with its context (see ``prepare_in_context``)."""
    return OperationSpec(name, scope, writes, deadline, output_limit, _needs_context(name),
                         prepare)


def streaming(name: str, scope: str,
              prepare: Callable[[Params, OperationContext], StreamRunner], *,
              deadline: float, output_limit: int) -> OperationSpec:
    """A streaming operation (see ``prepare_stream``); it runs only through the dispatcher's
    ``execute_stream``."""
    return OperationSpec(name, scope, False, deadline, output_limit, _needs_context(name),
                         prepare_stream=prepare)


def _watch(diag: DiagConfig) -> Callable[[Params, OperationContext], StreamRunner]:
    def prepare(params: Params, context: OperationContext) -> StreamRunner:
        query = watch.parse_watch(params, diag)
        return lambda emit: watch.watch(query, emit)
    return prepare


def _data(name: str, scope: str, writes: bool,
          prepare: Callable[[Params, OperationContext], Runner]) -> OperationSpec:
    return in_context(name, scope, writes, prepare)


_DATA_OPERATIONS = (("data.describe", "data.read", False), ("data.query", "data.read", False),
                    ("data.preview", "data.write", False), ("data.apply", "data.write", True),
                    ("data.undo", "data.write", False))


def data_specs(data: DataOperations | None) -> tuple[OperationSpec, ...]:
    """The data-correction operations bound to the customer's data sources; without any
    (``data`` None), the same operations refusing with that reason."""
    if data is None:
        return tuple(_data(name, scope, writes, _no_data_sources(name))
                     for name, scope, writes in _DATA_OPERATIONS)
    prepares = (data.prepare_describe, data.prepare_query, data.prepare_preview,
                data.prepare_apply, data.prepare_undo)
    return tuple(_data(name, scope, writes, prepare)
                 for (name, scope, writes), prepare in zip(_DATA_OPERATIONS, prepares, strict=True))


def _no_data_sources(name: str) -> Callable[[Params, OperationContext], Runner]:
    def prepare(params: Params, context: OperationContext) -> Runner:
        raise InvalidParams(f"{name}: no data sources are configured on this agent")
    return prepare


def _bind(parse: Callable[[Params], Q],
          run: Callable[[Q], Awaitable[dict[str, Any]]]) -> Callable[[Params], Runner]:
    def prepare(params: Params) -> Runner:
        query = parse(params)
        return lambda: run(query)
    return prepare


def _no_params(name: str, run: Runner) -> Callable[[Params], Runner]:
    def prepare(params: Params) -> Runner:
        ParamReader(name, params, ())
        return run
    return prepare


def _read(name: str, deadline: float, limit: int,
          prepare: Callable[[Params], Runner]) -> OperationSpec:
    return OperationSpec(name, "diag.read", False, deadline, limit, prepare)


def build_catalogue(diag: DiagConfig, data: DataOperations | None = None,
                    more: tuple[OperationSpec, ...] = (),
                    bundle: BundleSettings | None = None) -> dict[str, OperationSpec]:
    """Every operation, with the allowlists of ``diag`` bound into those that use them.

    The ``data.*`` operations are offered when ``data`` (the customer's data sources with
    the change store) is given; ``more`` adds operations bound elsewhere (``shell.open``).
    ``bundle`` is where ``bundle.create`` stages its archive (the agent's home) and its
    ``[bundle]`` limit; by default the system's temporary directory and 64 MiB.
    """
    specs = (
        _read("diag.system", 10.0, 64 * KIB, _no_params("diag.system", system.system)),
        _read("diag.cpu", 10.0, 64 * KIB, _bind(system.parse_cpu, system.cpu)),
        _read("diag.memory", 10.0, 16 * KIB, _no_params("diag.memory", system.memory)),
        _read("diag.disks", 15.0, MIB, _no_params("diag.disks", system.disks)),
        _read("diag.network", 15.0, MIB, _no_params("diag.network", network.network)),
        _read("diag.processes", 20.0, 512 * KIB,
              _bind(partial(processes.parse_processes, diag=diag), processes.processes)),
        _read("diag.process", 10.0, 256 * KIB,
              _bind(partial(processes.parse_process, diag=diag), processes.process)),
        _read("diag.services", 25.0, MIB, _bind(services.parse_services, services.services)),
        _read("diag.clock", 5.0, 4 * KIB, _bind(system.parse_clock, system.clock)),
        _read("diag.connect", 15.0, 64 * KIB,
              _bind(partial(connect.parse_connect, diag=diag), connect.connect)),
        _read("diag.database", 20.0, 256 * KIB,
              _bind(partial(database.parse_database, diag=diag), database.database)),
        streaming("diag.watch", "diag.read", _watch(diag), deadline=watch.MAX_FOR + 120.0,
                  output_limit=WATCH_OUTPUT_LIMIT),
        OperationSpec("logs.tail", "diag.logs", False, 20.0, MIB,
                      _bind(partial(logs.parse_tail, diag=diag), logs.tail)),
        OperationSpec("logs.search", "diag.logs", False, 25.0, MIB,
                      _bind(partial(logsearch.parse_search, diag=diag), logsearch.search)),
        OperationSpec("files.stat", "diag.files", False, 5.0, 16 * KIB,
                      _bind(partial(files.parse_file, "files.stat", diag=diag), files.stat_file)),
        OperationSpec("files.hash", "diag.files", False, 25.0, 16 * KIB,
                      _bind(partial(files.parse_file, "files.hash", diag=diag), files.hash_file)),
    )
    extra = data_specs(data)
    bundled = bundle_spec(diag, specs, bundle or BundleSettings())
    return {spec.name: spec for spec in (*specs, bundled, *extra, *more)}


CATALOGUE: dict[str, OperationSpec] = build_catalogue(DiagConfig())


def scope_of(name: str) -> str | None:
    """The scope an operation needs, or None for an operation the agent does not offer."""
    spec = CATALOGUE.get(name)
    return spec.scope if spec is not None else None
