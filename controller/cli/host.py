"""Commands of the controller host: init (a new deployment in the home) and serve."""

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
