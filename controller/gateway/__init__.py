"""The SSH gateway: stock OpenSSH clients log in to agents, every session recorded.

:mod:`~controller.gateway.server` (asyncssh, started by ``rmctl serve`` when
``gateway_listen`` is set), :mod:`~controller.gateway.session` (one login: checks, the
agent's Shell stream through :mod:`~controller.gateway.link`, the byte pump),
:mod:`~controller.gateway.asciicast` (recordings) and
:mod:`~controller.gateway.recording` (stored by SHA-256, named by a session event).

Errors: ``session.Refusal`` (a refused login, reason for the log only),
``link.LinkRefused`` (the agent refused or was unreachable), ``asciicast.CastInvalid``,
``recording.NoShellOpen``.
"""
