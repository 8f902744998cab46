"""The data operations as the catalogue runs them: parameters, context, consent, threads.

``data.describe`` / ``data.query`` (``data.read``) and ``data.preview`` / ``data.apply``
/ ``data.undo`` (``data.write``). Database work runs in a worker thread. Everything
returned is masked; unmasked images stay in the agent's :class:`~agent.changes.ChangeStore`
for the customer's own review (``rmagent changes``).

``data.apply`` needs a change consent for exactly the stored preview's digest, consumed
durably before any data is touched (see :mod:`agent.change_consent`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from agent.change_consent import ChangeGate, TrustSource, read_digest
from agent.changes import PREVIEW_TTL, ChangeStore, StoredPreview
from agent.context import OperationContext
from agent.data import change, query, undo
from agent.data.errors import ChangeNotFound, PlanDrifted
from agent.data.policy import DataConfig, DataSourcePolicy
from agent.data.schema import make_engine
from agent.data.values import masked
from agent.diag.params import ParamReader, Params
from agent.errors import AgentError, OperationFailed

Runner = Callable[[], Awaitable[dict[str, Any]]]
_log = logging.getLogger("agent.data")
__all__ = ["DataOperations", "TrustSource", "outward", "preview_rows"]


class DataOperations:
    """The customer's data sources bound to the change store, trust and clock."""

    def __init__(self, config: DataConfig, store: ChangeStore, trust: TrustSource,
                 clock: Callable[[], float], checkpoint: change.Checkpoint | None = None) -> None:
        self._config = config
        self._store = store
        self._gate = ChangeGate(store, trust, clock)
        self._clock = clock
        self._checkpoint = checkpoint or (lambda _name: None)
        self._engines: dict[str, sa.Engine] = {}

    def close(self) -> None:
        """Release the engines (they pool nothing; this drops their dialect state)."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def source(self, name: str) -> DataSourcePolicy | None:
        return self._config.source(name)

    def engine(self, name: str) -> sa.Engine | None:
        source = self._config.source(name)
        if source is None:
            return None
        if name not in self._engines:
            self._engines[name] = make_engine(source)
        return self._engines[name]

    def prepare_describe(self, params: Params, _ctx: OperationContext) -> Runner:
        source = self._source(ParamReader("data.describe", params, ("source",)), params)
        return self._threaded(query.describe, self._engine(source), source)

    def prepare_query(self, params: Params, _ctx: OperationContext) -> Runner:
        reader = ParamReader("data.query", params,
                             ("source", "table", "columns", "where", "order", "limit"))
        source = self._source(reader, params)
        return self._threaded(query.run_query, self._engine(source), source, params)

    def prepare_preview(self, params: Params, ctx: OperationContext) -> Runner:
        source = self._source(ParamReader("data.preview", params, ("source", "plan")), params)
        return lambda: self._guarded(self._preview(source, params.get("plan"), ctx))

    def prepare_apply(self, params: Params, ctx: OperationContext) -> Runner:
        digest = read_digest(ParamReader("data.apply", params, ("digest",)), params)
        return lambda: self._guarded(self._apply(digest, ctx))

    def prepare_undo(self, params: Params, ctx: OperationContext) -> Runner:
        digest = read_digest(ParamReader("data.undo", params, ("digest",)), params)
        return lambda: self._guarded(self._undo(digest, ctx))

    async def _preview(self, source: DataSourcePolicy, plan: Any, ctx: OperationContext,
                       undo_of: str | None = None) -> dict[str, Any]:
        previewed = await asyncio.to_thread(change.preview_plan, self._engine(source), source,
                                            plan, undo=undo_of is not None)
        now = self._clock()
        stored = StoredPreview(
            digest=previewed.digest, source=source.name, undo_of=undo_of,
            plan=previewed.plan.to_json(), schema_fp=previewed.schema_fp,
            images=previewed.images, agent_id=ctx.agent_id, case_id=ctx.case_id,
            grant_id=ctx.grant_id, session_id=ctx.session_id, engineer=ctx.engineer,
            engineer_key_id=ctx.engineer_key_id, created_at=now, expires_at=now + PREVIEW_TTL)
        await self._store.submit(self._store.add_preview, stored)
        return outward(stored, source)

    async def _apply(self, digest: str, ctx: OperationContext) -> dict[str, Any]:
        stored = await self._gate.pending(digest, "data")
        source = self._config.source(stored.source)
        if source is None:
            raise ChangeNotFound("the change's data source is no longer configured")
        await self._gate.consume(stored, ctx)
        try:
            return await asyncio.to_thread(
                change.apply_previewed, self._engine(source), source, stored, self._store,
                now=self._clock, checkpoint=self._checkpoint)
        except PlanDrifted as exc:  # its consent is spent: the change is over, not pending
            await self._store.submit(self._store.set_status, digest, "aborted", str(exc),
                                     only_from="pending")
            raise

    async def _undo(self, digest: str, ctx: OperationContext) -> dict[str, Any]:
        stored = await self._gate.applied(digest, "data")
        source = self._config.source(stored.source)
        if source is None:
            raise ChangeNotFound("the change's data source is no longer configured")
        schema, plan, current = await asyncio.to_thread(
            undo.current_rows, self._engine(source), source, stored)
        drift = undo.three_way(schema, plan.steps, stored, current)
        if drift:
            return {"digest": digest, "status": "refused",
                    "reason": "rows changed since the change was applied", "rows": drift}
        return await self._preview(source, undo.inverse_plan(stored, plan), ctx, digest)

    def _source(self, reader: ParamReader, params: Params) -> DataSourcePolicy:
        name = params.get("source")
        source = self._config.source(name) if isinstance(name, str) else None
        if source is None:
            reader.fail("source: no such configured data source")
        return source

    def _engine(self, source: DataSourcePolicy) -> sa.Engine:
        engine = self.engine(source.name)
        assert engine is not None  # the source exists: it was looked up by name
        return engine

    def _threaded(self, call: Callable[..., dict[str, Any]], *args: Any) -> Runner:
        return lambda: self._guarded(asyncio.to_thread(call, *args))

    async def _guarded(self, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """Database errors become one outward message; the detail stays in the agent log."""
        try:
            return await work
        except AgentError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            _log.error("data source error", extra={"fields": {"error": str(exc)[:2000]}})
            raise OperationFailed("the data source refused the statement") from exc


def outward(stored: StoredPreview, source: DataSourcePolicy) -> dict[str, Any]:
    """What the engineer sees of a preview: images with masked columns masked."""
    return {"digest": stored.digest, "source": stored.source, "undo_of": stored.undo_of,
            "status": stored.status, "expires_at": int(stored.expires_at),
            "counts": stored.images["counts"], "side_effects": stored.images["side_effects"],
            "rows": preview_rows(stored, source)}


def preview_rows(stored: StoredPreview,
                 source: DataSourcePolicy | None = None) -> list[dict[str, Any]]:
    """Each row's table, kind, key, before and after; masked per ``source`` if given."""
    kinds = [(kind[:-1], s["table"]) for kind in ("updates", "inserts", "deletes")
             for s in stored.plan.get(kind, [])]
    rows = []
    for (kind, table), key, before, after in zip(kinds, stored.images["keys"],
                                                  stored.images["before"],
                                                  stored.images["after"], strict=True):
        policy = source.table(table) if source is not None else None
        hide = policy.masked if policy is not None else ()
        if source is not None and policy is None:  # no longer allowlisted: show nothing
            before, after = None, None
        rows.append({"table": table, "kind": kind, "key": key,
                     "before": masked(before, hide), "after": masked(after, hide)})
    return rows

