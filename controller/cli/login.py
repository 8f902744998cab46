"""``rmctl login``: an engineer or auditor enrolls this home with a join token."""

from __future__ import annotations

from typing import Annotated

import typer

from controller.cli import _output as out
from controller.cli._app import Options, app, command


@command(app, "login")
def login(
    opts: Options,
    token: Annotated[str, typer.Option(help="Join token from 'rmctl engineer add' or "
                                            "'rmctl auditor add'.")],
) -> None:
    """Enroll this home's identity key (made on first login) as an engineer or auditor."""
    import asyncio

    from controller.client.login import login as enroll_home

    done = asyncio.run(enroll_home(opts.home, token))
    identity = done.identity
    if opts.json:
        out.emit_json({"identity": identity.uri, "role": identity.role, "name": identity.name,
                       "controller": done.controller, "home": str(opts.home),
                       "certificate_not_after": int(done.not_after), "key_id": done.key_id,
                       "new_key": done.new_key, "log_key_warning": done.log_key_warning})
        return
    key = "a new identity key" if done.new_key else "the existing identity key"
    out.note(f"logged in as {identity.role} {identity.name} ({identity.uri}) with {key}")
    out.note(f"controller {done.controller}; certificate valid until {out.when(done.not_after)}")
    out.note(f"key {done.key_id}; home {opts.home}")
    if done.log_key_warning:
        out.warn(done.log_key_warning)
