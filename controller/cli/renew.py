"""``rmctl renew``: a new certificate for this home's engineer key (grants stay valid)."""

from __future__ import annotations

from controller.cli import _output as out
from controller.cli._app import Options, app, command, fail


@command(app, "renew")
def renew(opts: Options) -> None:
    """Renew this home's engineer certificate now, for the same key (grants stay valid).

    rmctl also renews on its own before any command once half the certificate's life has
    passed. An auditor logs in again with a new token instead; the administrator's
    certificate lasts 365 days from 'rmctl init' (this command says until when)."""
    import asyncio

    from controller.client.config import load_config
    from controller.client.renew import not_renewed, renew_home, validity

    config = load_config(opts.home)
    if config.role == "admin":
        until = out.when(validity(config).not_after)
        raise fail(f"{not_renewed(config.role)}; it is valid until {until}")
    done = asyncio.run(renew_home(config))
    if opts.json:
        out.emit_json({"old_serial": done.old_serial, "serial": done.new_serial,
                       "certificate_not_after": int(done.not_after)})
        return
    out.note(f"certificate renewed (serial {done.new_serial}); valid until "
             f"{out.when(done.not_after)}")
