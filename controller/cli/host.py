"""Commands of the controller host: init (a new deployment in the home), serve, reissue."""

from __future__ import annotations

from typing import Annotated

import typer

from controller.cli import _gc
from controller.cli import _output as out
from controller.cli._app import Options, app, command


@command(app, "init")
def init(
    opts: Options,
    trust_domain: Annotated[str, typer.Option("--trust-domain", help="e.g. example.test")],
    listen: Annotated[str, typer.Option(help="mTLS API address.")] = "127.0.0.1:7443",
    enroll_listen: Annotated[str, typer.Option(help="Enrollment address.")] = "127.0.0.1:7444",
    database_url: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL (default: SQLite in the home).", show_default=False)] = None,
    san: Annotated[list[str] | None, typer.Option(
        "--san", help="Extra DNS name for the controller certificate (repeatable).")] = None,
    advertise: Annotated[str, typer.Option(
        help="host:port clients dial, required when --listen is a wildcard address.")] = "",
) -> None:
    """Create a deployment in the home: CA, controller and admin certificates, database."""
    from controller.setup import init_deployment

    init_deployment(opts.home, trust_domain, listen=listen, enroll_listen=enroll_listen,
                    database_url=database_url, sans=tuple(san or ()), advertise=advertise)
    if opts.json:
        out.emit_json({"home": str(opts.home), "trust_domain": trust_domain,
                       "listen": listen, "enroll_listen": enroll_listen})
        return
    out.note(f"deployment {trust_domain} created in {opts.home}")
    out.note(f"start the controller: rmctl --home {opts.home} serve")


@command(app, "serve")
def serve(opts: Options) -> None:
    """Run the controller of the deployment in the home until interrupted."""
    from controller.server import run

    _gc.working()  # a server: the usual collections from here on
    run(opts.home)


@command(app, "reissue")
def reissue(opts: Options) -> None:
    """Issue the controller's and the administrator's certificates again (same keys and
    names), for a year or until the deployment CA ends; restart 'rmctl serve' after.

    'rmctl init' issues both for 365 days and nothing renews them on their own; the
    controller logs 'certificate.ending' at start when fewer than 30 days are left.
    Agents, engineers and auditors pin the CA, so they accept the new ones as they are."""
    import time

    from controller.reissue import reissue as reissue_certificates

    done = reissue_certificates(opts.home, now=time.time())
    if opts.json:
        out.emit_json({"controller_until": int(done.controller_until),
                       "admin_until": int(done.admin_until), "ca_until": int(done.ca_until)})
        return
    out.note(f"controller certificate valid until {out.when(done.controller_until)}")
    out.note(f"administrator certificate valid until {out.when(done.admin_until)}")
    out.note(f"(the deployment CA ends {out.when(done.ca_until)})")
    out.note(f"restart the controller to serve the new certificate: rmctl --home {opts.home} serve")
