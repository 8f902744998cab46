"""``rmagent verify-log``: recompute the operation log's Merkle tree and check its checkpoint,
and the controller's cosignature on it (mutual witnessing, :mod:`agent.witness`)."""

from __future__ import annotations

import base64
import sqlite3
from typing import Any

import typer

from agent.cli._common import JsonOption, console, emit_json, enrolled, options
from agent.cli._errors import UserError, guarded
from agent.ledger import LOG_KEY, Ledger, LedgerError, origin_of
from agent.witness import latest_cosigned, pinned_controller, witnessed_count
from pki.files import read_ed25519_key
from tlog import NoteVerifier, TlogError, open_checkpoint


@guarded
def verify_log(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Check that the local log is intact: every entry against its leaf, and the last
    signed checkpoint against the entries (read-only; the agent may keep running)."""
    opts = options(ctx, json_out)
    config, paths = enrolled(opts)
    origin = origin_of(config.id, config.trust_domain)
    key_path = opts.home / LOG_KEY
    if not paths.log.exists() or not key_path.exists():
        raise UserError("the agent has not run yet: there is no log to verify")
    verifier = NoteVerifier(origin, read_ed25519_key(key_path).public_key().public_bytes_raw())
    try:
        conn = sqlite3.connect(f"{paths.log.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise UserError(f"cannot open the operation log {paths.log}: {exc}") from exc
    try:
        verified = Ledger().verify(conn, verifier, origin)
        witnessed = _witnessed(conn, verifier, origin)
    except LedgerError as exc:
        console(stderr=True).print(f"log integrity failure: {exc}")
        raise typer.Exit(1) from None
    except sqlite3.Error as exc:
        raise UserError(f"cannot read the operation log {paths.log}: {exc}") from exc
    finally:
        conn.close()
    head = verified.checkpoint
    if opts.json:
        emit_json({"verified": True, "entries": verified.entries, "origin": origin,
                   "checkpoint": None if head is None else {
                       "size": head.size, "root": base64.b64encode(head.root).decode(),
                       "note": head.note.decode()},
                   "log_key": verifier.vkey(), "witness": witnessed})
        return
    out = console()
    out.print(f"log verified: {verified.entries} entries, each matching its leaf")
    if head is None:
        out.print("no checkpoint signed yet")
    else:
        out.print(f"last checkpoint: {head.size} entries, root "
                  f"{base64.b64encode(head.root).decode()}, signed by {verifier.vkey()}")
    if witnessed["cosigned"] is None:
        out.print("not yet cosigned by the controller")
    else:
        out.print(f"cosigned by the controller ({witnessed['controller_key']}) at "
                  f"{witnessed['cosigned']['size']} entries; this agent cosigned "
                  f"{witnessed['witnessed']} of the controller's checkpoints (up to size "
                  f"{witnessed['witnessed_size']})")


def _witnessed(conn: sqlite3.Connection, verifier: NoteVerifier, origin: str) -> dict[str, Any]:
    """The controller's latest cosignature on this log, checked against the entries and the
    controller's log key pinned on first use; LedgerError if it does not hold."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'witness_cosigned'").fetchone():
        return {"controller_key": None, "cosigned": None, "witnessed": 0, "witnessed_size": 0}
    controller = pinned_controller(conn)
    count, size = witnessed_count(conn)
    found: dict[str, Any] = {"controller_key": controller.vkey() if controller else None,
                             "cosigned": None, "witnessed": count, "witnessed_size": size}
    latest = latest_cosigned(conn)
    if latest is None or controller is None:
        return found
    try:
        signed = open_checkpoint(latest[1], [verifier, controller], origin=origin, quorum=2)
    except TlogError as exc:
        raise LedgerError(f"the controller's cosignature at size {latest[0]} does not "
                          f"verify: {exc}") from exc
    if Ledger().root_of(conn, signed.checkpoint.size) != signed.checkpoint.root_hash:
        raise LedgerError(f"the first {signed.checkpoint.size} entries do not match the "
                          "checkpoint the controller cosigned")
    found["cosigned"] = {"size": signed.checkpoint.size, "note": latest[1].decode()}
    return found
