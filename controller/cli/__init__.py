"""rmctl, the service company's command line: a thin layer over ``controller.client``.

Top-level commands (init, serve, login) register on :data:`app` when their modules are
imported here; command groups are listed in :data:`controller.cli._app.GROUPS`, in the
order ``rmctl --help`` lists them, and each group's module is imported on first use.
"""

from controller.cli import host as _host  # noqa: F401 -- registers "rmctl init" and "serve"
from controller.cli import login as _login  # noqa: F401 -- registers "rmctl login"
from controller.cli import renew as _renew  # noqa: F401 -- registers "rmctl renew"
from controller.cli import shell as _shell  # noqa: F401 -- registers "rmctl ssh", "gateway-key"
from controller.cli._app import app, main

__all__ = ["app", "main"]
