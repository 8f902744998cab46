"""``rmctl init``: a new deployment in a controller home.

Creates the CA, the controller's certificate chain, the admin identity and rmctl.toml,
and migrates the store. Refuses (DeploymentExists) when the home or the database already
holds a deployment, before writing anything. rmctl.toml is written last, so a home
without it never counts as a deployment.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from controller.audit.keys import create_log_key
from controller.config import HomeFiles, parse_config
from controller.errors import ConfigError, DeploymentExists
from controller.store import Store, migrate
from pki.certs import SERVICE_CERT_LIFETIME, cert_pem, create_ca, generate_key, issue
from pki.files import write_key, write_private, write_public
from pki.identity import Identity

ADMIN_NAME = "admin"
LOOPBACK = "127.0.0.1"


def init_deployment(home: Path, trust_domain: str, *, listen: str = "127.0.0.1:7443",
                    enroll_listen: str = "127.0.0.1:7444", database_url: str | None = None,
                    sans: tuple[str, ...] = (), now: float | None = None,
                    advertise: str = "") -> None:
    """Create a deployment for ``trust_domain`` in ``home``.

    ``sans`` are extra DNS names or IP addresses for the controller's certificate
    ("localhost" and 127.0.0.1 are always included). ``advertise`` (host:port) is what
    clients dial when ``listen`` is a wildcard address. Raises ConfigError for bad values
    and DeploymentExists if ``home`` or the database already holds a deployment.
    """
    home = home.expanduser().resolve()
    when = time.time() if now is None else now
    section = {"trust_domain": trust_domain, "listen": listen, "enroll_listen": enroll_listen,
               "advertise": advertise, "database_url": database_url or ""}
    config = parse_config(home, section)
    names, ips = _split_sans(sans)
    files = HomeFiles.of(home)
    _refuse_existing(files)
    created = not home.exists()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.chmod(0o700)  # it will hold the CA key and possibly database credentials
    try:
        _migrate_new(config.database_url)
    except BaseException:
        if created and not any(home.iterdir()):
            home.rmdir()  # leave no trace of a deployment that never was
        raise
    ca_key, ca_cert = _write_ca(files, config.trust_domain, when)
    _write_controller(files, _Signer(ca_key, ca_cert, config.trust_domain, when), names, ips)
    create_log_key(home, config.trust_domain)  # signs the audit log's checkpoints; 0600
    _write_config(files, section, controller=config.public_address(config.listen.port))


@dataclass(frozen=True)
class _Signer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    trust_domain: str
    now: float

    def leaf(self, key: ec.EllipticCurvePrivateKey, role: str, name: str = "", *,
             dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> x509.Certificate:
        identity = Identity(self.trust_domain, role, name)
        return issue(self.key, self.cert, key.public_key(), identity, now=self.now,
                     lifetime=SERVICE_CERT_LIFETIME, dns_names=dns, ip_addresses=ips)


def _split_sans(sans: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names, ips = ["localhost"], [LOOPBACK]
    for san in (s.strip() for s in sans):
        try:
            ips.append(str(ipaddress.ip_address(san)))
        except ValueError:
            if not san or any(c.isspace() or c in "/:@" for c in san):
                raise ConfigError(f"invalid --san {san!r}: give a DNS name or IP address") \
                    from None
            names.append(san.lower())
    return tuple(dict.fromkeys(names)), tuple(dict.fromkeys(ips))


def _refuse_existing(files: HomeFiles) -> None:
    for path in (files.config, files.ca_key, files.ca_cert, files.key, files.admin_key):
        if path.exists():
            raise DeploymentExists(f"{files.home} already holds a deployment ({path.name} "
                                   "exists); refusing to overwrite it")


def _migrate_new(url: str) -> None:
    store = Store.open(url)
    try:
        if migrate.is_initialised(store):
            raise DeploymentExists("the database already holds a deployment; "
                                   "refusing to reuse it")
        migrate.upgrade(store)
    finally:
        store.close()


def _write_ca(files: HomeFiles, trust_domain: str,
              now: float) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = generate_key()
    cert = create_ca(key, trust_domain, now=now)
    write_key(files.ca_key, key)
    write_public(files.ca_cert, cert_pem(cert))
    return key, cert


def _write_controller(files: HomeFiles, signer: _Signer, names: tuple[str, ...],
                      ips: tuple[str, ...]) -> None:
    key = generate_key()
    leaf = signer.leaf(key, "controller", dns=names, ips=ips)
    write_key(files.key, key)
    # Leaf then CA: enrolling hosts fetch the chain and keep the CA matching their pin.
    write_public(files.cert, cert_pem(leaf) + cert_pem(signer.cert))
    admin_key = generate_key()
    write_key(files.admin_key, admin_key)
    write_public(files.admin_cert, cert_pem(signer.leaf(admin_key, "admin", ADMIN_NAME)))


def _write_config(files: HomeFiles, section: dict[str, str], *, controller: str) -> None:
    client: dict[str, Any] = {
        "role": "admin", "name": ADMIN_NAME, "controller": controller,
        "trust_domain": section["trust_domain"], "key": files.admin_key.name,
        "cert": files.admin_cert.name, "ca": files.ca_cert.name,
    }
    # 0600: database_url may carry a password.
    write_private(files.config, tomli_w.dumps({"controller": section, "client": client}).encode())

