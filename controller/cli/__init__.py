"""rmctl, the service company's command line: a thin layer over ``controller.client``.

Top-level commands (init, serve, login, renew, ssh, ...) register on :data:`app` when
their modules load, on first use of :data:`app` or :func:`main`; command groups are listed
in :data:`controller.cli._app.GROUPS`, in the order ``rmctl --help`` lists them, and each
group's module is imported on first use. Importing this package loads nothing else, so
that :func:`main` can set the garbage collector (see :mod:`controller.cli._gc`) before the
command tree loads.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from controller.cli import _gc

if TYPE_CHECKING:
    import typer

    app: typer.Typer

__all__ = ["app", "main"]

# Modules of the top-level commands: init and serve; login; renew; ssh, ssh-cert, gateway-key.
_TOP_LEVEL = ("host", "login", "renew", "shell")


def main() -> None:
    """Console entry point ``rmctl``: never a traceback; Ctrl-C exits 130."""
    _gc.starting()
    try:
        _root()
        from controller.cli._app import main as run

        run()
    finally:
        _gc.exiting()


def _root() -> typer.Typer:
    """The root command, with the top-level commands registered on it."""
    for module in _TOP_LEVEL:
        importlib.import_module(f"{__name__}.{module}")
    from controller.cli._app import app

    return app


def __getattr__(name: str) -> object:
    if name == "app":
        return _root()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
