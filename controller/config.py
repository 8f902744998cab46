"""The controller's home: its file layout and the [controller] section of rmctl.toml.

    [controller]
    trust_domain  = "example.test"
    listen        = "127.0.0.1:7443"   # mutual-TLS API; port 0 picks a free port (tests)
    enroll_listen = "127.0.0.1:7444"   # server-only TLS, EnrollmentService only
    advertise     = ""                 # host:port clients should dial; "" = listen
    database_url  = ""                 # "" = sqlite:///<home>/controller.db
    gateway_listen = ""                # SSH gateway for interactive login; "" = off

Every bad value raises :class:`~controller.errors.ConfigError` with a message naming the
file, the key and what is expected.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from controller.errors import ConfigError
from pki.files import reason
from pki.identity import IdentityError, check_trust_domain

CONFIG_NAME = "rmctl.toml"
DEFAULT_LISTEN = "127.0.0.1:7443"
DEFAULT_ENROLL_LISTEN = "127.0.0.1:7444"
_KEYS = ("trust_domain", "listen", "enroll_listen", "advertise", "database_url",
         "gateway_listen")
_WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104  # recognised, not bound
_DRIVERS = {"sqlite": "sqlite", "sqlite+pysqlite": "sqlite",
            "postgresql": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg"}


@dataclass(frozen=True)
class HomeFiles:
    """Where a controller home keeps its files (absolute when ``home`` is)."""

    home: Path
    config: Path
    ca_key: Path
    ca_cert: Path
    key: Path
    cert: Path
    admin_key: Path
    admin_cert: Path
    database: Path
    log: Path

    @classmethod
    def of(cls, home: Path) -> HomeFiles:
        return cls(home, home / CONFIG_NAME, home / "ca.key", home / "ca.crt",
                   home / "controller.key", home / "controller.crt", home / "admin.key",
                   home / "admin.crt", home / "controller.db", home / "controller.log")


@dataclass(frozen=True)
class Address:
    """A ``host:port``; IPv6 hosts are written in brackets."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, what: str = "address") -> Address:
        host, sep, port = text.strip().rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"{what} must be host:port with a port 0-65535, got {text!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            _check_ipv6(host, what, text)
        elif ":" in host:
            raise ConfigError(f"{what}: write IPv6 hosts in brackets, e.g. [::1]:7443")
        return cls(host, int(port))

    @property
    def is_wildcard(self) -> bool:
        return self.host in _WILDCARDS

    def with_port(self, port: int) -> Address:
        return Address(self.host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _check_ipv6(host: str, what: str, text: str) -> None:
    try:
        ipaddress.IPv6Address(host)
    except ValueError as exc:
        raise ConfigError(f"{what}: {text!r} has an invalid IPv6 address") from exc


@dataclass(frozen=True)
class ControllerConfig:
    """A validated [controller] section; ``database_url`` is resolved and usable as is."""

    home: Path
    trust_domain: str
    listen: Address
    enroll_listen: Address
    advertise: Address | None
    database_url: str
    gateway_listen: Address | None = None

    @property
    def files(self) -> HomeFiles:
        return HomeFiles.of(self.home)

    def public_address(self, bound_port: int) -> str:
        """What clients dial for the mutual-TLS API: ``advertise``, else ``listen``."""
        return str(self.advertise or self.listen.with_port(bound_port))

    def enroll_address(self, bound_port: int) -> str:
        """What join tokens name: the advertised host (if any) with the enrollment port."""
        host = self.advertise.host if self.advertise else self.enroll_listen.host
        return str(Address(host, bound_port))

    @property
    def safe_database_url(self) -> str:
        """The database URL with any password hidden, for logs and messages."""
        return make_url(self.database_url).render_as_string(hide_password=True)


def default_database_url(home: Path) -> str:
    return str(URL.create("sqlite", database=str(HomeFiles.of(home).database)))


def load_config(home: Path) -> ControllerConfig:
    """Read and validate ``<home>/rmctl.toml``'s [controller] section."""
    home = home.expanduser().resolve()
    path = HomeFiles.of(home).config
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist: run 'rmctl init' first") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {reason(exc, with_file=False)}") from exc
    section = data.get("controller")
    if not isinstance(section, dict):
        raise ConfigError(f"{path} has no [controller] section")
    try:
        return parse_config(home, section)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def parse_config(home: Path, section: Mapping[str, Any]) -> ControllerConfig:
    """Validate one [controller] table; pure, so every error is easy to test."""
    unknown = sorted(set(section) - set(_KEYS))
    if unknown:
        raise ConfigError(f"unknown key in [controller]: {', '.join(unknown)}")
    text = {key: _text(section, key) for key in _KEYS}
    if not text["trust_domain"]:
        raise ConfigError("[controller] trust_domain is required")
    try:
        trust_domain = check_trust_domain(text["trust_domain"])
    except IdentityError as exc:
        raise ConfigError(f"[controller] trust_domain: {exc}") from exc
    listen = Address.parse(text["listen"] or DEFAULT_LISTEN, "[controller] listen")
    enroll = Address.parse(text["enroll_listen"] or DEFAULT_ENROLL_LISTEN,
                           "[controller] enroll_listen")
    advertise = Address.parse(text["advertise"], "[controller] advertise") \
        if text["advertise"] else None
    _check_advertise(listen, enroll, advertise)
    url = resolve_database_url(home, text["database_url"])
    gateway = Address.parse(text["gateway_listen"], "[controller] gateway_listen") \
        if text["gateway_listen"] else None
    return ControllerConfig(home, trust_domain, listen, enroll, advertise, url, gateway)


def _text(section: Mapping[str, Any], key: str) -> str:
    value = section.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"[controller] {key} must be a string, got {type(value).__name__}")
    return value.strip()


def _check_advertise(listen: Address, enroll: Address, advertise: Address | None) -> None:
    if advertise is not None:
        if advertise.is_wildcard or advertise.port == 0:
            raise ConfigError("[controller] advertise must name a reachable host and port")
        return
    for what, address in (("listen", listen), ("enroll_listen", enroll)):
        if address.is_wildcard:
            raise ConfigError(f"[controller] {what} is a wildcard address ({address}): "
                              "set advertise to the host:port clients should dial")


def resolve_database_url(home: Path, text: str) -> str:
    """The SQLAlchemy URL to use; relative SQLite paths are taken relative to ``home``."""
    if not text:
        return default_database_url(home)
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ConfigError("[controller] database_url is not a database URL") from exc
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError("[controller] database_url must be sqlite:///PATH or "
                          f"postgresql+psycopg://..., not {url.drivername}://")
    url = url.set(drivername=driver)
    if driver == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigError("[controller] database_url: SQLite needs a file path")
        url = url.set(database=str(home / Path(url.database).expanduser()))
    return url.render_as_string(hide_password=False)
