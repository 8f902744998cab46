"""``rmctl login``: enroll this home's long-lived key as an engineer or auditor.

The key in ``<home>/identity.key`` is reused when it exists, so grants that name it stay
valid across certificate renewals; otherwise a new P-256 key is made here and written 0600.
It never leaves this host: only a CSR goes to the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

import permissions
from controller.client.config import CONFIG_NAME, read_toml, write_client_section
from controller.client.errors import ClientError, ConfigError, LoginError
from pki.certs import generate_key
from pki.enroll import Enrolled, EnrollmentRefused, enroll
from pki.files import read_ec_key, write_key, write_public
from pki.identity import Identity
from pki.token import JoinToken, TokenError
from tlog import TlogError, parse_verifier_key

KEY_FILE = "identity.key"
CERT_FILE = "identity.crt"
CA_FILE = "ca.crt"
PERSON_ROLES = ("engineer", "auditor")


@dataclass(frozen=True)
class LoggedIn:
    """The outcome of a login."""

    identity: Identity
    controller: str
    not_after: float
    key_id: str
    new_key: bool
    # An auditor's home that pinned another log key than the controller now offers: the
    # pin is kept (evidence is checked against it) and this says so.
    log_key_warning: str = ""


def identity_key(home: Path) -> tuple[ec.EllipticCurvePrivateKey, bool]:
    """The home's identity key and whether it is new (kept in memory until login succeeds)."""
    path = home / KEY_FILE
    if path.exists():
        try:
            return read_ec_key(path), False
        except (OSError, ValueError, TypeError) as exc:
            raise LoginError(f"cannot use {path} ({exc}): move it away to make a new "
                             "identity") from exc
    return generate_key(), True


async def login(home: Path, token_text: str) -> LoggedIn:
    """Enroll with ``token_text``; write identity.crt, ca.crt and rmctl.toml [client]."""
    token = _decode(token_text)
    _refuse_controller_home(home)
    _readable_pin(home)  # before the token is spent: a login then either works or changes nothing
    key, new_key = identity_key(home)
    try:
        enrolled = await enroll(token, key, roles=("engineer", "auditor"))
    except (EnrollmentRefused, TokenError) as exc:
        raise LoginError(f"login refused: {exc}") from exc
    certificate = _check(enrolled, key)
    if new_key:  # written only once a certificate exists for it: a refused login leaves nothing
        write_key(home / KEY_FILE, key)
    _save(home, enrolled)
    warning = await pin_log_key(home) if enrolled.identity.role == "auditor" else ""
    return LoggedIn(enrolled.identity, enrolled.controller_address,
                    certificate.not_valid_after_utc.timestamp(),
                    permissions.key_id(key.public_key()), new_key, warning)


def _readable_pin(home: Path) -> None:
    """ConfigError if the home pins a log key (an auditor's) that cannot be read: a login
    would keep it, and every audit command would refuse it."""
    from controller.client.audit import read_pin

    read_pin(home)


def _decode(token_text: str) -> JoinToken:
    try:
        return JoinToken.decode(token_text)
    except TokenError as exc:
        raise LoginError(str(exc)) from exc


def _refuse_controller_home(home: Path) -> None:
    if not (home / CONFIG_NAME).exists():
        return
    # Checked before enrolling: a token is single use, so nothing may fail after it.
    if "controller" in read_toml(home):
        raise LoginError(f"{home} holds a controller deployment: log in with another --home")


def _check(enrolled: Enrolled, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    if enrolled.identity.role not in PERSON_ROLES:
        raise LoginError(f"this token was for an {enrolled.identity.role}: use "
                         "'rmagent enroll --token T' on the customer host")
    if not enrolled.controller_address:
        raise LoginError("the controller did not say where to reach it")
    try:
        certificate = x509.load_pem_x509_certificate(enrolled.certificate_pem)
    except ValueError as exc:
        raise LoginError("the controller sent an unreadable certificate") from exc
    public = certificate.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or \
            permissions.key_id(public) != permissions.key_id(key.public_key()):
        raise LoginError("the controller certified another key than this home's")
    return certificate


def _save(home: Path, enrolled: Enrolled) -> None:
    write_public(home / CERT_FILE, enrolled.certificate_pem)
    write_public(home / CA_FILE, enrolled.ca_pem)
    identity = enrolled.identity
    write_client_section(home, {
        "role": identity.role, "name": identity.name,
        "controller": enrolled.controller_address, "trust_domain": identity.trust_domain,
        "key": KEY_FILE, "cert": CERT_FILE, "ca": CA_FILE,
    })


async def pin_log_key(home: Path) -> str:
    """Pin the controller's log key in an auditor's home, over the login's fresh mTLS
    identity; if that fails, the first ``rmctl audit`` pins it (and says so). A key pinned
    before is kept, never replaced by what the controller says now: a warning if they
    differ, else ""."""
    from controller.client.api import ControllerClient
    from controller.client.audit import PIN_FILE, read_pin
    from controller.client.config import load_config

    try:
        async with ControllerClient.open(load_config(home)) as client:
            key = parse_verifier_key(await client.log_key())
    except (ClientError, TlogError):
        return ""
    try:
        pinned = read_pin(home)
    except ConfigError as exc:  # checked before enrolling; changed since: say so, keep it
        return f"{exc}; it is kept as it is"
    if pinned is None:
        write_public(home / PIN_FILE, (key.vkey() + "\n").encode())
    elif pinned.vkey() != key.vkey():
        return (f"the controller's log key ({key.vkey()}) is not the one this home pinned "
                f"({pinned.vkey()}); the pin is kept and evidence is checked against it. "
                f"If the change is expected, confirm the new key out of band, then delete "
                f"{home / PIN_FILE} and run any 'rmctl audit' command to pin it")
    return ""
