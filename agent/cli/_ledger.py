"""``rmagent verify-log``: recompute the operation log's Merkle tree and check its checkpoint."""

from __future__ import annotations

import base64
import sqlite3

import typer

from agent.cli._common import JsonOption, console, emit_json, enrolled, options
from agent.cli._errors import UserError, guarded
from agent.ledger import LOG_KEY, Ledger, LedgerError, origin_of
from pki.files import read_ed25519_key
from tlog import NoteVerifier


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
                   "log_key": verifier.vkey()})
        return
    out = console()
    out.print(f"log verified: {verified.entries} entries, each matching its leaf")
    if head is None:
        out.print("no checkpoint signed yet")
    else:
        out.print(f"last checkpoint: {head.size} entries, root "
                  f"{base64.b64encode(head.root).decode()}, signed by {verifier.vkey()}")
