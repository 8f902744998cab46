"""Renewing an engineer's certificate: ``rmctl renew``, and before any command past half-life.

The home's key stays as it is (grants name it); only ``identity.crt`` is replaced,
atomically, once the controller's answer checks out (same key, same identity, issued by
the deployment CA). Automatic renewal never stops a command: if it fails, the command
runs with the still-valid certificate and the next one tries again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from controller.client._validity import read_validity
from controller.client.config import ClientConfig
from controller.client.errors import ConfigError, LoginError
from pki.files import read_cert, read_ec_key, reason, write_public
from pki.renew import RenewalFailed, Validity, renew
from pki.tls import TlsFiles

RENEWABLE_ROLES = ("engineer",)


@dataclass(frozen=True)
class Renewed:
    """The certificate before and after (serials in hex, validity in unix seconds)."""

    old_serial: str
    new_serial: str
    not_after: float


def not_renewed(role: str) -> str:
    """Why a home of ``role`` (not an engineer's) gets no renewed certificate, and what to do."""
    if role == "admin":
        return ("the administrator's certificate is not renewed: 'rmctl init' issued it for "
                "365 days, with the controller's own; 'rmctl reissue' in the controller's "
                "home issues both again")
    return (f"an {role}'s certificate is not renewed: log in again with a new token from an "
            "administrator ('rmctl login --token T')")


def validity(config: ClientConfig) -> Validity:
    try:
        return Validity(*read_validity(config.cert))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the certificate {config.cert}: "
                          f"{reason(exc, with_file=False)}") from exc


async def renew_home(config: ClientConfig, *, now: float | None = None) -> Renewed:
    """Renew the home's certificate now; LoginError if that cannot be done."""
    if config.role not in RENEWABLE_ROLES:
        raise LoginError(not_renewed(config.role))
    now = time.time() if now is None else now
    try:
        old = read_cert(config.cert)
        key = read_ec_key(config.key)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the identity files in {config.home}: "
                          f"{reason(exc)}") from exc
    files = TlsFiles(config.key, config.cert, config.ca)
    try:
        pem, cert = await renew(config.controller, files, config.identity, key, now=now)
    except RenewalFailed as exc:
        raise LoginError(f"renewal refused or failed: {exc}") from exc
    write_public(config.cert, pem)
    return Renewed(format(old.serial_number, "x"), format(cert.serial_number, "x"),
                   Validity.of(cert).not_after)


async def renew_if_due(config: ClientConfig, *, now: float | None = None) -> Renewed | None:
    """Renew when past half-life (engineers only); None when not due or if it failed."""
    now = time.time() if now is None else now
    if config.role not in RENEWABLE_ROLES:
        return None
    try:
        if not validity(config).due(now):
            return None
        return await renew_home(config, now=now)
    except (ConfigError, LoginError):
        return None  # the command goes on with the still-valid certificate
