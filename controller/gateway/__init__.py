"""The SSH gateway: stock OpenSSH clients log in to agents, every session recorded.

:mod:`~controller.gateway.server` (asyncssh, started by ``rmctl serve`` when
``gateway_listen`` is set), :mod:`~controller.gateway.session` (one login: checks, the
agent's Shell stream through :mod:`~controller.gateway.link`, the byte pump),
:mod:`~controller.gateway.asciicast` (recordings),
:mod:`~controller.gateway.recording` (stored by SHA-256, named by a session event) and
:mod:`~controller.gateway.userca` with :mod:`~controller.gateway.usercert` (OpenSSH
certificates that carry a shell ticket, so the login name is the plain agent id).

Errors: ``session.Refusal`` (a refused login, reason for the log only),
``link.LinkRefused`` (the agent refused or was unreachable), ``asciicast.CastInvalid``,
``recording.NoShellOpen``, ``userca.CertificateRefused`` (for the log only),
``usercert.CertificateInvalid``.
"""
