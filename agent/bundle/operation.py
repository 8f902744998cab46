"""``bundle.create`` as the catalogue runs it (scope ``diag.read``, streamed).

Parameters: ``include``, a list of sections (``system``, ``cpu``, ``memory``, ``disks``,
``network``, ``processes``, ``services``, ``clock``, ``configs``, ``logs``);
``logs_lines``, lines of each log's tail, 1 to 10000 (default 1000).

A bundle reads no more than its grant could read on its own: ``logs`` needs the grant to
hold ``diag.logs``; ``configs`` (the contents of the files under ``[diag] file_roots``,
which no scope reads otherwise) needs both the customer's ``[bundle] configs = true`` and
the grant to hold ``diag.files``. Without ``include`` the bundle holds every section
allowed, and its manifest lists the ones withheld and why; an ``include`` naming a
section not allowed is refused like any missing scope.

One run: the readings and log tails are taken together (the snapshot), then a worker
thread redacts and stages them with the configuration files, writes the archive (see
:mod:`agent.bundle.archive`) to an unnamed temporary file in the agent's home, and the
archive is streamed in parts of ``PART_LIMIT`` bytes. Temporary files are unlinked as
they are made: whether the run ends, fails or is cancelled (deadline, revoke), nothing
is left on disk, and their space is freed when the run lets go of them. The archive is
complete before its first part is sent: never half an archive.

The summary is ``{"bundle": {"files", "redactions", "errors", "cut", "bytes",
"sha256", "manifest_sha256", "withheld"}}`` (``withheld``: the sections left out as not
allowed); the dispatcher adds the parts' count, size and SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from agent.bundle import archive, collect
from agent.bundle.collect import SECTIONS, Staging, Stopped
from agent.bundle.policy import DEFAULT_MAX_BYTES, MAX_MAX_BYTES
from agent.context import OperationContext
from agent.diag.params import ParamReader, Params
from agent.diag.policy import DiagConfig
from agent.errors import InvalidParams, OperationFailed, Refused

if TYPE_CHECKING:
    from agent.catalogue import Emit, OperationSpec, Runner, StreamRunner

NAME = "bundle.create"
DEADLINE = 120.0
OUTPUT_LIMIT = MAX_MAX_BYTES
DEFAULT_LOG_LINES = 1000
MAX_LOG_LINES = 10_000
SPOOL_NAME = "bundles"


@dataclass(frozen=True)
class BundleSettings:
    """Where and how large: ``home`` is the agent's home (temporary files go to its
    ``bundles`` directory; without one, to the system's temporary directory),
    ``max_bytes`` the customer's ``[bundle] max_bytes``, ``clock`` the snapshot time,
    ``configs`` the customer's ``[bundle] configs`` opt-in."""

    home: Path | None = None
    max_bytes: int = DEFAULT_MAX_BYTES
    clock: Callable[[], float] = time.time
    configs: bool = False

    def spool(self) -> Path:
        """The directory for temporary files, made private (0700) if missing."""
        if self.home is None:
            return Path(tempfile.gettempdir())
        spool = self.home / SPOOL_NAME
        spool.mkdir(mode=0o700, exist_ok=True)
        return spool


@dataclass(frozen=True)
class BundleQuery:
    """Validated parameters of ``bundle.create``; ``explicit`` when ``include`` was given."""

    sections: tuple[str, ...] = SECTIONS
    logs_lines: int = DEFAULT_LOG_LINES
    explicit: bool = False


def parse_bundle(params: Params) -> BundleQuery:
    """``include``: a non-empty list of distinct sections; ``logs_lines`` 1..10000."""
    reader = ParamReader(NAME, params, {"include", "logs_lines"})
    lines = reader.integer("logs_lines", DEFAULT_LOG_LINES, 1, MAX_LOG_LINES)
    include = params.get("include", list(SECTIONS))
    if not isinstance(include, list) or not include \
            or not all(isinstance(s, str) and s in SECTIONS for s in include) \
            or len(set(include)) != len(include):
        reader.fail(f"include must be a list of distinct sections from: {', '.join(SECTIONS)}")
    return BundleQuery(tuple(s for s in SECTIONS if s in include), lines, "include" in params)


def withheld(settings: BundleSettings, scopes: Sequence[str]) -> dict[str, str]:
    """The sections this grant's ``scopes`` and the customer's settings do not allow,
    each with why."""
    out: dict[str, str] = {}
    if "diag.logs" not in scopes:
        out["logs"] = "the grant does not hold diag.logs"
    if not settings.configs:
        out["configs"] = "not enabled by the customer ([bundle] configs in agent.toml)"
    elif "diag.files" not in scopes:
        out["configs"] = "the grant does not hold diag.files"
    return out


def allowed(query: BundleQuery, settings: BundleSettings,
            scopes: Sequence[str]) -> tuple[BundleQuery, dict[str, str]]:
    """``query`` narrowed to what is allowed, and the sections withheld; Refused when an
    explicit ``include`` names a section not allowed (outward only "permission denied")."""
    denied = withheld(settings, scopes)
    if query.explicit:
        asked = {s: why for s, why in denied.items() if s in query.sections}
        if asked:
            raise Refused("scope-not-granted", "; ".join(f"{NAME} section {s}: {why}"
                                                         for s, why in asked.items()))
        return query, {}
    kept = tuple(s for s in query.sections if s not in denied)
    return BundleQuery(kept, query.logs_lines, False), denied


@dataclass(frozen=True)
class Built:
    """A finished archive: its size and hashes (the file itself is in the handoff)."""

    size: int
    sha256: str
    manifest_sha256: str
    files: int
    redactions: int
    errors: int
    cut: bool


class Handoff:
    """The archive file passed from the worker thread to the run, exactly once.

    Whoever comes second cleans up: a worker that finishes after the run was cancelled
    closes the file itself; a run that ends before taking the file closes it here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self._file: IO[bytes] | None = None

    def deliver(self, file: IO[bytes]) -> None:
        with self._lock:
            if not self.stop.is_set():
                self._file = file
                return
        file.close()
        raise Stopped

    def take(self) -> IO[bytes]:
        with self._lock:
            file, self._file = self._file, None
        assert file is not None  # delivered before the worker returned
        return file

    def end(self) -> None:
        with self._lock:
            self.stop.set()
            file, self._file = self._file, None
        if file is not None:
            file.close()


class BundleOperation:
    """``bundle.create`` bound to the customer's allowlists and the catalogue's readers."""

    def __init__(self, diag: DiagConfig, readers: Mapping[str, OperationSpec],
                 settings: BundleSettings, part_limit: int) -> None:
        self._diag = diag
        self._readers = readers
        self._settings = settings
        self._part_limit = part_limit
        self.limit = min(settings.max_bytes, OUTPUT_LIMIT)

    def prepare(self, params: Params) -> Runner:
        parse_bundle(params)
        raise InvalidParams(f"{NAME}: streams its output: run it with ExecuteStream")

    def prepare_stream(self, params: Params, context: OperationContext) -> StreamRunner:
        return partial(self.run, parse_bundle(params), context)

    async def run(self, query: BundleQuery, context: OperationContext, emit: Emit) -> dict[str, Any]:
        # Checked in the run, so that a refusal is recorded as the attempt's result.
        query, denied = allowed(query, self._settings, context.scopes)
        created_at = self._settings.clock()
        found, logs = await asyncio.gather(
            collect.readings(self._readers, query.sections),
            collect.tails(self._diag, query.logs_lines if "logs" in query.sections else 0))
        handoff = Handoff()
        try:
            built = await asyncio.to_thread(self._build, query, context, created_at, found,
                                            logs, denied, handoff)
            with handoff.take() as file:
                await self._stream(file, built.size, emit)
        finally:
            handoff.end()
        return {"bundle": {"files": built.files, "redactions": built.redactions,
                           "errors": built.errors, "cut": built.cut, "bytes": built.size,
                           "sha256": built.sha256, "manifest_sha256": built.manifest_sha256,
                           "withheld": sorted(denied)}}

    async def _stream(self, file: IO[bytes], size: int, emit: Emit) -> None:
        sent = 0
        while sent < size:
            # Read on the loop: the file was just written (in the page cache), and a
            # worker thread still reading it when a revoke closes it could hit a reused
            # descriptor.
            part = os.pread(file.fileno(), min(self._part_limit, size - sent), sent)
            if not part:
                raise OperationFailed("operation failed: the bundle's temporary file shrank")
            await emit(part)
            sent += len(part)

    def _build(self, query: BundleQuery, context: OperationContext, created_at: float,
               found: Mapping[str, dict[str, Any] | collect.Fault],
               logs: Sequence[tuple[Any, dict[str, Any]]], denied: Mapping[str, str],
               handoff: Handoff) -> Built:
        spool = self._settings.spool()
        budget = self.limit - archive.reserve(self.limit)
        with Staging(spool, budget, handoff.stop) as staging:
            collect.stage_readings(staging, found, self._diag.redact_patterns)
            if "configs" in query.sections:
                collect.stage_configs(staging, self._diag)
            collect.stage_logs(staging, logs)
            manifest = archive.manifest(agent_id=context.agent_id, case_id=context.case_id,
                                        created_at=created_at, sections=query.sections,
                                        limit=self.limit, staging=staging, withheld=denied)
            file = tempfile.TemporaryFile(dir=spool)  # handed off, or closed here
            try:
                archive.write(file, manifest, staging, int(created_at))
                file.flush()  # read back below through the descriptor
                size = file.tell()
                if size > self.limit:  # the budget makes this impossible; never send it
                    raise OperationFailed(f"operation failed: the bundle came to {size} bytes, "
                                          f"over its limit of {self.limit}")
                digest = _sha256(file, size)
                handoff.deliver(file)
            except BaseException:
                file.close()
                raise
        return Built(size=size, sha256=digest, manifest_sha256=hashlib.sha256(manifest).hexdigest(),
                     files=len(staging.members),
                     redactions=sum(m.redactions for m in staging.members),
                     errors=len(staging.faults) + staging.faults_omitted, cut=staging.limited)


def _sha256(file: IO[bytes], size: int) -> str:
    digest, offset = hashlib.sha256(), 0
    while offset < size:
        chunk = os.pread(file.fileno(), min(1 << 20, size - offset), offset)
        if not chunk:
            raise OperationFailed("operation failed: the bundle's temporary file shrank")
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def bundle_spec(diag: DiagConfig, specs: Sequence[OperationSpec],
                settings: BundleSettings) -> OperationSpec:
    """The ``bundle.create`` entry of the catalogue, reading with the catalogue's
    ``diag.*`` operations in ``specs``."""
    from agent.catalogue import PART_LIMIT, OperationSpec  # the catalogue imports this module

    operation = BundleOperation(diag, {s.name: s for s in specs}, settings, PART_LIMIT)
    return OperationSpec(NAME, "diag.read", False, DEADLINE, operation.limit, operation.prepare,
                         prepare_stream=operation.prepare_stream)
