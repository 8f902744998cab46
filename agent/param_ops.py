"""The parameter-change operations (scope ``config.write``) as the catalogue runs them.

- ``config.preview`` (``file``, ``changes``: key to new value): previews the change with
  :func:`agent.params.preview`, stores it (kind ``config``) and returns the changed
  keys (old and new), the unified diff, the digest and the expiry.
- ``config.apply`` (``digest``): a change consent for exactly that digest is consumed
  first (:class:`~agent.change_consent.ChangeGate`), then the file is changed exactly as
  previewed. The apply's record (with the backup's path on this host) stays in the
  journal for an undo. A failing validation command is reported as
  ``status: validation-failed``: the file was restored; a file that changed since the
  preview gives ``status: refused`` (nothing was changed).
- ``config.undo`` (``digest`` of an applied change): a restore is a change too; it is
  previewed (its own digest, the diff back) and applied with ``config.apply`` under its
  own consent. Refused, with the file's three sha256, when the file changed since.

Diffs and validation output leave the host redacted line by line (a neighbouring line of
context may hold a secret); the customer reviews the unredacted diff locally.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from agent import params
from agent.catalogue import OperationSpec, Runner, in_context
from agent.change_consent import ChangeGate, read_digest
from agent.changes import PREVIEW_TTL, StoredPreview
from agent.context import OperationContext
from agent.data.errors import ChangeNotFound
from agent.diag.params import ParamReader, Params
from agent.errors import InvalidParams, OperationFailed

# The undo preview and crash recovery need the engine's own safe file read, text rendering
# and digest: the same code that apply and undo check against, not a second copy of it.
from agent.params import _files
from agent.params._preview import digest as change_digest
from agent.params._preview import render, unified_diff
from agent.redact import LineRedactor

KIND = "config"
PARAMS_BACKUPS = "params-backups"  # under the agent home, 0700
_log = logging.getLogger("agent.params")


class ParamOperations:
    """The customer's ``[params]`` allowlist bound to the backups, change gate and clock."""

    def __init__(self, config: params.ParamsConfig, backups: params.Backups,
                 gate: ChangeGate, clock: Callable[[], float]) -> None:
        self._config = config
        self._backups = backups
        self._gate = gate
        self._clock = clock

    def specs(self) -> tuple[OperationSpec, ...]:
        # An apply waits for the slowest validation command the customer configured.
        slowest = max((f.validate_timeout for f in self._config.files), default=0.0)
        return (
            in_context("config.preview", "config.write", False, self.prepare_preview),
            in_context("config.apply", "config.write", True, self.prepare_apply,
                       deadline=30.0 + slowest),
            in_context("config.undo", "config.write", False, self.prepare_undo),
        )

    def prepare_preview(self, raw: Params, ctx: OperationContext) -> Runner:
        reader = ParamReader("config.preview", raw, ("file", "changes"))
        name = reader.text("file", max_length=64)
        changes = raw.get("changes")
        if not isinstance(changes, Mapping) or not all(isinstance(k, str) for k in changes):
            reader.fail("changes must be a table of key to new value")
        return lambda: self._preview(name, dict(changes), ctx)

    def prepare_apply(self, raw: Params, ctx: OperationContext) -> Runner:
        digest = read_digest(ParamReader("config.apply", raw, ("digest",)), raw)
        return lambda: self._apply(digest, ctx)

    def prepare_undo(self, raw: Params, ctx: OperationContext) -> Runner:
        digest = read_digest(ParamReader("config.undo", raw, ("digest",)), raw)
        return lambda: self._undo(digest, ctx)

    async def _preview(self, name: str, changes: dict[str, Any],
                       ctx: OperationContext) -> dict[str, Any]:
        previewed = await _engine(params.preview, self._config, name, changes)
        return await self._store(previewed, ctx, undo_of=None)

    async def _store(self, previewed: params.ParamPreview, ctx: OperationContext,
                     undo_of: str | None) -> dict[str, Any]:
        now = self._clock()
        # Every preview its own change (see agent.service_ops): the file's digest and a nonce.
        nonce = secrets.token_hex(16)
        stored = StoredPreview(
            digest=preview_digest(previewed.digest, nonce), source=previewed.name,
            undo_of=undo_of, plan={**previewed.to_dict(), "nonce": nonce}, schema_fp="",
            images={}, agent_id=ctx.agent_id,
            case_id=ctx.case_id, grant_id=ctx.grant_id, session_id=ctx.session_id,
            engineer=ctx.engineer, engineer_key_id=ctx.engineer_key_id, created_at=now,
            expires_at=now + PREVIEW_TTL, kind=KIND)
        await self._gate.store.submit(self._gate.store.add_preview, stored)
        return outward(stored)

    async def _apply(self, digest: str, ctx: OperationContext) -> dict[str, Any]:
        stored = await self._gate.pending(digest, KIND)
        previewed = _stored_preview(stored)
        applied = await self._applied_record(stored.undo_of) if stored.undo_of else None
        await self._gate.consume(stored, ctx)
        store = self._gate.store
        await store.submit(store.journal_begin, digest, [], self._clock())
        try:
            if applied is not None:
                record = await _engine(params.undo, self._config, applied, self._backups)
            else:
                record = await _engine(params.apply, self._config, previewed, self._backups)
        except (params.ValidationFailed, params.Drifted, params.UndoRefused) as exc:
            await store.submit(store.journal_end, digest, "aborted", self._clock())
            return _not_applied(digest, previewed.name, exc)
        except Exception:
            await store.submit(store.journal_end, digest, "aborted", self._clock())
            raise
        await store.submit(store.journal_end, digest, "applied", self._clock(), record)
        _log.info("parameter change applied", extra={"fields": {
            "digest": digest, "file": previewed.name, "undo_of": stored.undo_of}})
        return {"digest": digest, "kind": KIND, "status": "applied", "file": previewed.name,
                "undo_of": stored.undo_of, "changes": plan_changes(stored),
                "validation": _redacted_validation(record.get("validation"))}

    async def _undo(self, digest: str, ctx: OperationContext) -> dict[str, Any]:
        stored = await self._gate.applied(digest, KIND)
        if stored.undo_of is not None:
            raise ChangeNotFound(f"{digest} is an undo: preview the change again instead")
        applied = await self._applied_record(digest)
        inverse = await asyncio.to_thread(self._inverse, applied)
        if isinstance(inverse, dict):
            return inverse
        return await self._store(inverse, ctx, undo_of=digest)

    def _inverse(self, applied: dict[str, Any]) -> params.ParamPreview | dict[str, Any]:
        """The preview that puts the file back, or the refusal when it changed since."""
        try:
            file = self._config.file(applied["name"])
            current = _files.read(file)
            before = self._backups.load(file, applied["digest"]).decode("utf-8")
        except (params.ParamsError, UnicodeDecodeError) as exc:
            raise OperationFailed(f"cannot undo {applied['name']}: {exc}") from exc
        if current.sha256 != applied["after_sha256"]:
            return {"digest": applied["digest"], "status": "refused", "file": file.name,
                    "reason": "the file changed since the change was applied",
                    "view": {"before_sha256": applied["before_sha256"],
                             "after_sha256": applied["after_sha256"],
                             "current_sha256": current.sha256,
                             "diff_after_to_current": redact_text(unified_diff(
                                 file.name, _after_text(file, before, applied),
                                 current.text))[0]}}
        changes = tuple(params.Change(c["key"], c["new"], c["old"]) for c in applied["changes"])
        return params.ParamPreview(
            file.name, file.format, changes, unified_diff(file.name, current.text, before),
            applied["after_sha256"], applied["before_sha256"],
            change_digest(file.name, applied["after_sha256"], applied["before_sha256"],
                          changes))

    def resolve_applying(self) -> dict[str, str]:
        """Close the config applies a crash cut off, by the file's sha256: the previewed
        after-text means applied, the before-text aborted; anything else stays
        ``applying`` (logged) for the customer to look at. Blocking: run at start."""
        store, verdicts = self._gate.store, {}
        for digest in store.applying(KIND):
            stored = store.preview(digest)
            verdict = self._verdict(stored) if stored is not None else None
            if stored is not None and verdict is not None:
                store.journal_end(digest, verdict, self._clock(),
                                  self._recovered_record(stored) if verdict == "applied"
                                  else None)
                verdicts[digest] = verdict
            _log.warning("interrupted parameter change resolved", extra={"fields": {
                "digest": digest, "verdict": verdict or "undetermined"}})
        return verdicts

    def _verdict(self, stored: StoredPreview) -> str | None:
        try:
            current = _files.read(self._config.file(stored.source)).sha256
        except params.ParamsError:
            return None
        return {stored.plan["after_sha256"]: "applied",
                stored.plan["before_sha256"]: "aborted"}.get(current)

    def _recovered_record(self, stored: StoredPreview) -> dict[str, Any] | None:
        """The record ``params.apply`` would have returned (an undo keeps none)."""
        if stored.undo_of is not None:
            return None
        file = self._config.file(stored.source)
        file_digest = stored.plan["digest"]  # the file change's own, as params.apply keys it
        return {"name": file.name, "digest": file_digest,
                "before_sha256": stored.plan["before_sha256"],
                "after_sha256": stored.plan["after_sha256"],
                "backup": str(self._backups.path(file, file_digest)),
                "changes": plan_changes(stored), "validation": None}

    async def _applied_record(self, digest: str) -> dict[str, Any]:
        record = await self._gate.store.submit(self._gate.store.journal_record, digest)
        if record is None:
            raise ChangeNotFound(f"no applied change {digest}")
        return record


def outward(stored: StoredPreview) -> dict[str, Any]:
    """What the engineer sees of a stored config preview: the diff redacted."""
    diff, hidden = redact_text(stored.plan["diff"])
    return {"digest": stored.digest, "kind": KIND, "file": stored.source,
            "format": stored.plan["format"], "undo_of": stored.undo_of,
            "status": stored.status, "expires_at": int(stored.expires_at),
            "changes": plan_changes(stored), "diff": diff, "redactions": hidden}


def plan_changes(stored: StoredPreview) -> list[dict[str, Any]]:
    return [dict(c) for c in stored.plan["changes"]]


def redact_text(text: str) -> tuple[str, int]:
    """``text`` redacted line by line, and how many values were hidden."""
    redactor, hidden, lines = LineRedactor(), 0, []
    for line in text.splitlines(keepends=True):
        shown, count = redactor.redact(line)
        lines.append(shown)
        hidden += count
    return "".join(lines), hidden


async def _engine(call: Callable[..., Any], *args: Any) -> Any:
    """Run an engine call in a thread. What the engineer asked wrong is invalid input
    (its message is shown); a file that drifted is an apply's outcome, not an error."""
    try:
        return await asyncio.to_thread(call, *args)
    except (params.ValidationFailed, params.Drifted, params.UndoRefused):
        raise  # an apply reports these as its outcome
    except (params.ChangeRejected, params.UnknownParamFile, params.FileRefused) as exc:
        raise InvalidParams(str(exc)) from exc
    except params.ParamsError as exc:
        raise OperationFailed(str(exc)) from exc


def _stored_preview(stored: StoredPreview) -> params.ParamPreview:
    plan = {k: v for k, v in stored.plan.items() if k != "nonce"}
    try:
        previewed = params.ParamPreview.from_dict(plan)
    except params.Drifted as exc:
        raise OperationFailed(str(exc)) from exc
    if "nonce" in stored.plan and \
            preview_digest(previewed.digest, str(stored.plan["nonce"])) != stored.digest:
        raise OperationFailed("the stored preview does not match its digest")
    return previewed


def preview_digest(file_digest: str, nonce: str) -> str:
    """The digest the customer consents to: the file change's own and a nonce."""
    body = {"kind": "config.preview", "file_digest": file_digest, "nonce": nonce}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _after_text(file: params.ParamFile, before: str, applied: dict[str, Any]) -> str:
    after, _old, _new = render(file, before, {c["key"]: c["new"] for c in applied["changes"]})
    return after


def _not_applied(digest: str, name: str, exc: params.ParamsError) -> dict[str, Any]:
    """The outcome of an apply the file's state stopped: nothing changed, or restored."""
    _log.warning("parameter change not applied", extra={"fields": {
        "digest": digest, "file": name, "error": type(exc).__name__, "reason": str(exc)}})
    result: dict[str, Any] = {"digest": digest, "kind": KIND, "file": name, "reason": str(exc)}
    if isinstance(exc, params.ValidationFailed):
        return {**result, "status": "validation-failed", "restored": True,
                "validation": _redacted_validation(exc.result)}
    if isinstance(exc, params.UndoRefused):
        return {**result, "status": "refused", "view": _redacted_view(exc.view)}
    return {**result, "status": "refused"}


def _redacted_view(view: dict[str, Any]) -> dict[str, Any]:
    return {k: redact_text(v)[0] if k.startswith("diff") else v for k, v in view.items()}


def _redacted_validation(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if result is None:
        return None
    output, hidden = redact_text(str(result.get("output", "")))
    return {"argv": result.get("argv"), "exit_code": result.get("exit_code"),
            "timed_out": result.get("timed_out"), "output": output, "redactions": hidden}
