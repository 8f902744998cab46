"""rmctl, the service company's command line: a thin layer over ``controller.client``.

Top-level commands (init, serve, login) register on :data:`app` when their modules are
imported; command groups are added here, in the order ``rmctl --help`` lists them.
"""

from controller.cli import access, admin, cases, diag, sessions
from controller.cli import login as _login  # noqa: F401 -- registers "rmctl login"
from controller.cli._app import app, main

for _group, _name in (
    (admin.customer_app, "customer"), (admin.agent_app, "agent"),
    (admin.engineer_app, "engineer"), (admin.auditor_app, "auditor"),
    (cases.case_app, "case"), (access.access_app, "access"),
    (sessions.session_app, "session"), (diag.diag_app, "diag"),
    (access.consent_app, "consent"),
):
    app.add_typer(_group, name=_name)

__all__ = ["app", "main"]
