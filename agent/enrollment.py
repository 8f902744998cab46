"""Enrolling an agent home from a one-time join token.

The agent key is made here and never leaves the host. The single-use token is spent only
once the home has proven writable (the new key is staged 0600 first), and agent.toml is
written last: its presence is what "enrolled" means, so a failure leaves no half home.

    EnrollmentError         the home could not be enrolled; the message is one clear line
    ├── AlreadyEnrolled     the home has an agent.toml and --force was not given
    ├── BadToken            the token is damaged, foreign, or its controller unreachable/unpinned
    └── Refused             the controller refused the token, or certified something else
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from agent.config import (
    MODES,
    AgentConfig,
    AgentPaths,
    ConfigError,
    PinnedApprover,
    load,
    save,
)
from pki import enroll as pki_enroll
from pki.certs import generate_key
from pki.files import write_key, write_public
from pki.identity import IdentityError
from pki.token import PREFIX, JoinToken, TokenError

Enroller = Callable[[JoinToken, ec.EllipticCurvePrivateKey, str], Awaitable[pki_enroll.Enrolled]]


class EnrollmentError(Exception):
    """The home could not be enrolled."""


class AlreadyEnrolled(EnrollmentError):
    """The home already holds an agent configuration."""


class BadToken(EnrollmentError):
    """The token cannot be used: damaged, not ours, or its controller cannot be verified."""


class Refused(EnrollmentError):
    """The controller refused the token, or issued a certificate that is not an agent's."""


@dataclass(frozen=True)
class EnrolledAgent:
    """What the new home holds, for the CLI to report."""

    home: Path
    agent_id: str
    trust_domain: str
    controller: str
    listen: str
    kept_approvers: int
    mode: str = "direct"


async def _pki_enroll(token: JoinToken, key: ec.EllipticCurvePrivateKey,
                      listen: str) -> pki_enroll.Enrolled:
    return await pki_enroll.enroll(token, key, agent_address=listen, roles=("agent",))


def decode_token(text: str) -> JoinToken:
    """The join token in ``text``; BadToken with a hint if it is damaged or not ours."""
    try:
        return JoinToken.decode(text)
    except TokenError as exc:
        if not text.strip().startswith(PREFIX):
            raise BadToken(f"not an rmaint join token (it starts with {PREFIX!r})") from exc
        raise BadToken(f"{exc}: check that the whole token was copied") from exc


def check_listen(listen: str) -> str:
    """``listen`` if it is host:port with a port in 1..65535 and a host name, an IPv4
    address or a bracketed IPv6 one: checked before the token is spent."""
    host, sep, port = listen.rpartition(":")
    if not sep or not _LISTEN_HOST.fullmatch(host) or not port.isdigit() \
            or not 0 < int(port) <= 65535:
        raise EnrollmentError(f"--listen must be host:port, got {listen!r}")
    return listen


_LISTEN_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")


async def enroll_home(home: Path, token_text: str, *, listen: str, force: bool = False,
                      mode: str = "direct",
                      enroller: Enroller = _pki_enroll) -> EnrolledAgent:
    """Enroll ``home`` with the token. Enrolled again (with force), the home keeps what the
    customer configured in agent.toml: pinned approvers and every policy table (diag
    redaction, data sources, shell, parameters, services, devices, inspection, witness).

    ``mode`` as in agent.toml; in "dial-out" the agent listens on no port and the
    controller is given no address: it reaches the agent over the stream the agent opens."""
    paths = AgentPaths(home)
    token = decode_token(token_text)
    check_listen(listen)
    if mode not in MODES:
        raise EnrollmentError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    dial_out = mode == "dial-out"
    previous = _previous_config(paths, force)
    approvers = previous.approvers if previous is not None else ()
    key = generate_key()
    staged = home / ".agent.key.new"
    write_key(staged, key)
    try:
        enrolled = await _exchange(enroller, token, key, "" if dial_out else listen)
        config = replace(_config_of(enrolled, listen, approvers), mode=mode)
        if previous is not None:  # the identity is new; the customer's policy is not
            config = replace(previous, id=config.id, trust_domain=config.trust_domain,
                             listen=listen, controller=config.controller, mode=mode)
        _install(paths, staged, enrolled, config)
    finally:
        staged.unlink(missing_ok=True)
    return EnrolledAgent(home, config.id, config.trust_domain, config.controller, listen,
                         len(approvers), mode)


def _previous_config(paths: AgentPaths, force: bool) -> AgentConfig | None:
    if not paths.config.exists():
        return None
    if not force:
        raise AlreadyEnrolled(f"{paths.home} is already enrolled: use --force to enroll it again")
    try:
        return load(paths.home)
    except ConfigError:
        return None  # a damaged old configuration is being replaced on purpose


async def _exchange(enroller: Enroller, token: JoinToken, key: ec.EllipticCurvePrivateKey,
                    listen: str) -> pki_enroll.Enrolled:
    try:
        return await enroller(token, key, listen)
    except TokenError as exc:
        raise BadToken(str(exc)) from exc
    except pki_enroll.EnrollmentRefused as exc:
        message = str(exc)
        if message == "enrollment refused":
            message += ": the token is unknown, already used or expired; ask for a new one"
        raise Refused(message) from exc
    except IdentityError as exc:
        raise Refused(f"the controller certified an unusable identity: {exc}") from exc


def _config_of(enrolled: pki_enroll.Enrolled, listen: str,
               approvers: tuple[PinnedApprover, ...]) -> AgentConfig:
    identity = enrolled.identity
    if identity.role != "agent":
        raise Refused(f"this join token is for the {identity.role} {identity.name!r}, "
                      "not an agent: people log in with 'rmctl login'")
    return AgentConfig(id=identity.name, trust_domain=identity.trust_domain, listen=listen,
                       controller=enrolled.controller_address, approvers=approvers)


def _install(paths: AgentPaths, staged: Path, enrolled: pki_enroll.Enrolled,
             config: AgentConfig) -> None:
    write_public(paths.cert, enrolled.certificate_pem)
    write_public(paths.ca, enrolled.ca_pem)
    os.replace(staged, paths.key)
    save(paths.home, config)
