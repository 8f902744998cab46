"""The agent's home directory and its configuration file ``<home>/agent.toml``.

The file is the customer's: no RPC can change it. It pins the approver keys whose
signatures the agent accepts, so reading it is strict and every fault is a
:class:`ConfigError` with a message fit for one line on stderr::

    ConfigError                 agent.toml cannot be used
    ├── ConfigMissing           there is no agent.toml (the home is not enrolled)
    ├── ConfigInvalid           agent.toml does not parse or breaks a rule
    └── DuplicateApprover       pinning a name or key that is already pinned

Layout (relative names resolve against the home)::

    [agent]  id, trust_domain, listen, controller, socket = "rmagent.sock",
             mode = "direct" | "dial-out" | "both" (serve on listen, connect out to the
             controller, or both; see :mod:`agent.dialout`)
    [[approvers]]  name, key_id, public_key (base64 of the raw 32-byte Ed25519 key)
    [log]    path = "agent-log.db"
    [diag]   log_files, journald_units, file_roots, connect_allow, max_hash_bytes,
             [[diag.data_sources]]
             (optional; what engineers may see, see :mod:`agent.diag.policy`)
    [data]   [[data.sources]] with [[data.sources.tables]] (optional; what engineers may
             read and correct, see :mod:`agent.data.policy`)
    [inspect] enabled, interval_seconds, thresholds (optional; the periodic inspection,
             see :mod:`agent.inspect.profile`)
    [shell]  user, shell, idle_timeout, max_duration (optional; interactive login, see
             :mod:`agent.shell.policy`)
    [params] [[params.files]] (optional; config files whose allowlisted keys engineers
             may change with consent, see :mod:`agent.params.policy`)
    [services] [[services.allow]] (optional; services engineers may control, see
             :mod:`agent.servicectl.policy`)
    [[devices]] (optional; agentless devices reached over SSH, see
             :mod:`agent.devices.policy`)
    [bundle] max_bytes, configs (optional; the size limit of support bundles and the
             opt-in to copying configuration files into them, see
             :mod:`agent.bundle.policy`)
    [witness] interval_seconds (optional; how often the logs are witnessed, see
             :mod:`agent.witness_config`)
"""

from __future__ import annotations

import base64
import binascii
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent import params as params_policy
from agent import servicectl as services_policy
from agent import witness_config
from agent.bundle import policy as bundle_policy
from agent.data import policy as data_policy
from agent.data.policy import DataConfig
from agent.devices import policy as devices_policy
from agent.devices.policy import DevicesConfig
from agent.diag import policy as diag_policy
from agent.diag.policy import DiagConfig
from agent.inspect import profile as inspect_profile
from agent.inspect.profile import InspectProfile
from agent.shell import policy as shell_policy
from agent.shell.errors import ShellPolicyInvalid
from agent.shell.policy import ShellPolicy
from permissions import PublicKey, key_id, public_key_bytes
from pki.files import write_private
from pki.identity import IdentityError, check_name, check_trust_domain

CONFIG_NAME = "agent.toml"
DEFAULT_LISTEN = "127.0.0.1:7501"
DEFAULT_SOCKET = "rmagent.sock"
DEFAULT_LOG = "agent-log.db"
MODES = ("direct", "dial-out", "both")

__all__ = [
    "CONFIG_NAME", "DEFAULT_LISTEN", "DEFAULT_LOG", "DEFAULT_SOCKET", "MODES", "AgentConfig",
    "AgentPaths", "ConfigError", "ConfigInvalid", "ConfigMissing", "DuplicateApprover",
    "PinnedApprover", "load", "pin_approver", "save",
]


class ConfigError(Exception):
    """agent.toml cannot be used; the message names the file and the fault."""


class ConfigMissing(ConfigError):
    """The home has no agent.toml."""


class ConfigInvalid(ConfigError):
    """agent.toml does not parse or breaks a rule."""


class DuplicateApprover(ConfigError):
    """An approver with that name or key is already pinned."""


@dataclass(frozen=True)
class PinnedApprover:
    """A customer approver whose Ed25519 public key the agent trusts.

    ``public_key`` is the raw 32-byte key; ``key_id`` always equals
    ``permissions.key_id`` of it (checked on load and when pinning).
    """

    name: str
    key_id: str
    public_key: bytes

    def key(self) -> ed25519.Ed25519PublicKey:
        return ed25519.Ed25519PublicKey.from_public_bytes(self.public_key)

    @classmethod
    def of(cls, name: str, public_key: ed25519.Ed25519PublicKey | bytes) -> PinnedApprover:
        """A pin for ``public_key`` (a key object or its raw 32 bytes) under ``name``."""
        key = _ed25519(public_key)
        return cls(name=_check_name(name, "approver name"), key_id=key_id(key),
                   public_key=public_key_bytes(key))


@dataclass(frozen=True)
class AgentConfig:
    """The content of agent.toml. ``socket`` and ``log_path`` are as written (may be relative)."""

    id: str
    trust_domain: str
    listen: str = DEFAULT_LISTEN
    controller: str = ""
    socket: str = DEFAULT_SOCKET
    log_path: str = DEFAULT_LOG
    approvers: tuple[PinnedApprover, ...] = ()
    diag: DiagConfig = field(default_factory=DiagConfig)
    data: DataConfig = field(default_factory=DataConfig)
    inspect: InspectProfile = field(default_factory=InspectProfile)
    shell: ShellPolicy = field(default_factory=ShellPolicy)
    params: params_policy.ParamsConfig = field(default_factory=params_policy.ParamsConfig)
    services: services_policy.ServicesConfig = field(
        default_factory=services_policy.ServicesConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    bundle: bundle_policy.BundleConfig = field(default_factory=bundle_policy.BundleConfig)
    witness: witness_config.WitnessConfig = field(default_factory=witness_config.WitnessConfig)
    mode: str = "direct"

    @property
    def serves_direct(self) -> bool:
        """Whether the agent listens on ``listen`` for the controller."""
        return self.mode in ("direct", "both")

    @property
    def dials_out(self) -> bool:
        """Whether the agent connects out to the controller for operations."""
        return self.mode in ("dial-out", "both")

    def approver_keys(self) -> dict[str, PublicKey]:
        """Pinned keys by key id, as ``permissions.verify_decision`` takes them."""
        return {a.key_id: a.key() for a in self.approvers}


@dataclass(frozen=True)
class AgentPaths:
    """Where the agent keeps its files under ``home``."""

    home: Path
    socket_name: str = DEFAULT_SOCKET
    log_name: str = DEFAULT_LOG

    @classmethod
    def of(cls, home: Path, config: AgentConfig) -> AgentPaths:
        """Paths honouring the socket and log locations configured in ``config``."""
        return cls(home, config.socket, config.log_path)

    @property
    def config(self) -> Path:
        return self.home / CONFIG_NAME

    @property
    def key(self) -> Path:
        return self.home / "agent.key"

    @property
    def cert(self) -> Path:
        return self.home / "agent.crt"

    @property
    def ca(self) -> Path:
        return self.home / "ca.crt"

    @property
    def state(self) -> Path:
        return self.home / "state.db"

    @property
    def log(self) -> Path:
        """The append-only operation log (SQLite)."""
        return self.home / self.log_name

    @property
    def daemon_log(self) -> Path:
        """The daemon's JSON-lines diagnostic log."""
        return self.home / "agent.log"

    @property
    def socket(self) -> Path:
        return self.home / self.socket_name

    @property
    def approvers_dir(self) -> Path:
        return self.home / "approvers"

    def approver_key(self, name: str) -> Path:
        return self.approvers_dir / f"{_check_name(name, 'approver name')}.key"


def load(home: Path) -> AgentConfig:
    """Read and validate ``<home>/agent.toml``; raise ConfigMissing or ConfigInvalid."""
    path = home / CONFIG_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigMissing(f"{path} not found: this home is not enrolled") from exc
    except OSError as exc:
        raise ConfigInvalid(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigInvalid(f"cannot read {path}: not UTF-8 text ({exc.reason})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid(f"{path} is not valid TOML: {exc}") from exc
    try:
        return _parse(data)
    except ConfigInvalid as exc:
        raise ConfigInvalid(f"{path}: {exc}") from None


def save(home: Path, config: AgentConfig) -> None:
    """Write ``config`` to ``<home>/agent.toml`` atomically (never a partial file)."""
    _validate(config)
    home.mkdir(parents=True, exist_ok=True)
    # 0600: [[diag.data_sources]] may hold database passwords.
    write_private(home / CONFIG_NAME, tomli_w.dumps(_to_toml(config)).encode())


def pin_approver(home: Path, name: str,
                 public_key: ed25519.Ed25519PublicKey | bytes) -> PinnedApprover:
    """Add an approver to ``[[approvers]]``; raise DuplicateApprover if name or key is pinned."""
    config = load(home)
    pin = PinnedApprover.of(name, public_key)
    for existing in config.approvers:
        if existing.name == pin.name:
            raise DuplicateApprover(f"an approver named {name!r} is already pinned")
        if existing.key_id == pin.key_id:
            raise DuplicateApprover(f"that key is already pinned as {existing.name!r}")
    save(home, replace(config, approvers=(*config.approvers, pin)))
    return pin


def _ed25519(public_key: ed25519.Ed25519PublicKey | bytes) -> ed25519.Ed25519PublicKey:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key
    if len(public_key) != 32:
        raise ConfigInvalid("an approver key must be a raw 32-byte Ed25519 public key")
    return ed25519.Ed25519PublicKey.from_public_bytes(public_key)


def _check_name(value: str, what: str) -> str:
    try:
        return check_name(value, what)
    except IdentityError as exc:
        raise ConfigInvalid(str(exc)) from None


def _check_address(value: str, what: str, *, allow_empty: bool = False) -> str:
    if allow_empty and value == "":
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigInvalid(f"{what} must be host:port, got {value!r}")
    return value


def _check_relative_name(value: str, what: str) -> str:
    if not value or "\x00" in value:
        raise ConfigInvalid(f"{what} must be a file name or path")
    return value


def _validate(config: AgentConfig) -> None:
    _check_name(config.id, "agent id")
    try:
        check_trust_domain(config.trust_domain)
    except IdentityError as exc:
        raise ConfigInvalid(str(exc)) from None
    _check_address(config.listen, "agent.listen")
    _check_address(config.controller, "agent.controller", allow_empty=True)
    _check_relative_name(config.socket, "agent.socket")
    if config.mode not in MODES:
        raise ConfigInvalid(f"agent.mode must be one of {', '.join(MODES)}, got {config.mode!r}")
    if config.dials_out and not config.controller:
        raise ConfigInvalid(f"agent.mode {config.mode!r} needs agent.controller")
    _check_relative_name(config.log_path, "log.path")
    names = [a.name for a in config.approvers]
    ids = [a.key_id for a in config.approvers]
    if len(set(names)) != len(names) or len(set(ids)) != len(ids):
        raise ConfigInvalid("approvers must have distinct names and keys")
    for approver in config.approvers:
        if PinnedApprover.of(approver.name, approver.public_key) != approver:
            raise ConfigInvalid(f"approver {approver.name!r}: key_id does not match its key")
    try:
        normalized = diag_policy.parse(diag_policy.to_toml(config.diag))
    except diag_policy.DiagConfigInvalid as exc:
        raise ConfigInvalid(str(exc)) from None
    if normalized != config.diag:
        raise ConfigInvalid("[diag] entries must be written in normal form")
    try:
        data_normalized = data_policy.parse(data_policy.to_toml(config.data))
    except data_policy.DataConfigInvalid as exc:
        raise ConfigInvalid(str(exc)) from None
    if data_normalized != config.data:
        raise ConfigInvalid("[data] entries must be written in normal form")
    if _parse_inspect(inspect_profile.to_toml(config.inspect), config.diag) != config.inspect:
        raise ConfigInvalid("[inspect] entries must be written in normal form")
    for name, section in _SECTIONS.items():
        value = getattr(config, name)
        if section.parse(section.to_toml(value)) != value:
            raise ConfigInvalid(f"[{name}] entries must be written in normal form")


def _table(data: dict[str, Any], name: str, keys: set[str]) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigInvalid(f"[{name}] must be a table")
    unknown = set(table) - keys
    if unknown:
        raise ConfigInvalid(f"unknown key in [{name}]: {', '.join(sorted(unknown))}")
    return table


def _string(table: dict[str, Any], name: str, where: str, default: str | None = None) -> str:
    value = table.get(name, default)
    if value is None:
        raise ConfigInvalid(f"{where}.{name} is missing")
    if not isinstance(value, str):
        raise ConfigInvalid(f"{where}.{name} must be a string")
    return value


def _parse(data: dict[str, Any]) -> AgentConfig:
    unknown = set(data) - {"agent", "approvers", "log", "diag", "inspect", "data", "shell",
                           *_SECTIONS}
    if unknown:
        raise ConfigInvalid(f"unknown section: {', '.join(sorted(unknown))}")
    if "agent" not in data:
        raise ConfigInvalid("[agent] section is missing")
    agent = _table(data, "agent", {"id", "trust_domain", "listen", "controller", "socket",
                                   "mode"})
    log = _table(data, "log", {"path"})
    config = AgentConfig(
        id=_string(agent, "id", "agent"),
        trust_domain=_string(agent, "trust_domain", "agent"),
        listen=_string(agent, "listen", "agent", DEFAULT_LISTEN),
        controller=_string(agent, "controller", "agent", ""),
        socket=_string(agent, "socket", "agent", DEFAULT_SOCKET),
        mode=_string(agent, "mode", "agent", "direct"),
        log_path=_string(log, "path", "log", DEFAULT_LOG),
        approvers=_parse_approvers(data.get("approvers", [])),
        diag=_parse_diag(data),
        data=_parse_data(data),
        inspect=_parse_inspect(data.get("inspect", {}), _parse_diag(data)),
        shell=_parse_shell(data.get("shell", {})),
        **{name: section.parse(data.get(name, section.empty))
           for name, section in _SECTIONS.items()},
    )
    _validate(config)
    return config


@dataclass(frozen=True)
class _Section:
    """An optional section whose engine parses and writes it alone: ``empty`` is its value
    when absent, ``errors`` what its parser raises for a fault."""

    name: str
    parse_raw: Callable[[Any], Any]
    to_toml: Callable[[Any], Any]
    empty: dict[str, Any] | list[Any]
    errors: type[Exception]

    def parse(self, value: Any) -> Any:
        if not isinstance(value, type(self.empty)):
            kind = "a table" if isinstance(self.empty, dict) else "an array of tables"
            raise ConfigInvalid(f"[{self.name}] must be {kind}")
        try:
            return self.parse_raw(value)
        except self.errors as exc:
            raise ConfigInvalid(str(exc)) from None


_SECTIONS: dict[str, _Section] = {
    "params": _Section("params", params_policy.parse, params_policy.to_toml, {},
                       params_policy.ParamsConfigInvalid),
    "services": _Section("services", services_policy.parse, services_policy.to_toml, {},
                         services_policy.ServicesConfigInvalid),
    "devices": _Section("devices", devices_policy.parse, devices_policy.to_toml, [],
                        devices_policy.DeviceConfigInvalid),
    "bundle": _Section("bundle", bundle_policy.parse, bundle_policy.to_toml, {},
                       bundle_policy.BundleConfigInvalid),
    "witness": _Section("witness", witness_config.parse, witness_config.to_toml, {},
                        witness_config.WitnessConfigInvalid),
}


def _parse_inspect(table: Any, diag: DiagConfig) -> InspectProfile:
    if not isinstance(table, dict):
        raise ConfigInvalid("[inspect] must be a table")
    try:
        return inspect_profile.parse(table, data_sources=tuple(s.name for s in diag.data_sources),
                                     shortest=inspect_profile.min_interval())
    except inspect_profile.InspectProfileInvalid as exc:
        raise ConfigInvalid(str(exc)) from None


def _parse_shell(table: Any) -> ShellPolicy:
    try:
        return shell_policy.parse(table)
    except ShellPolicyInvalid as exc:
        raise ConfigInvalid(str(exc)) from None


def _parse_data(data: dict[str, Any]) -> DataConfig:
    table = data.get("data", {})
    if not isinstance(table, dict):
        raise ConfigInvalid("[data] must be a table")
    try:
        return data_policy.parse(table)
    except data_policy.DataConfigInvalid as exc:
        raise ConfigInvalid(str(exc)) from None


def _parse_diag(data: dict[str, Any]) -> DiagConfig:
    table = data.get("diag", {})
    if not isinstance(table, dict):
        raise ConfigInvalid("[diag] must be a table")
    try:
        return diag_policy.parse(table)
    except diag_policy.DiagConfigInvalid as exc:
        raise ConfigInvalid(str(exc)) from None


def _parse_approvers(entries: Any) -> tuple[PinnedApprover, ...]:
    if not isinstance(entries, list):
        raise ConfigInvalid("approvers must be an array of tables ([[approvers]])")
    pins = []
    for entry in entries:
        table = _table({"approvers": entry}, "approvers", {"name", "key_id", "public_key"})
        raw = _decode_key(_string(table, "public_key", "approvers"))
        pins.append(PinnedApprover(name=_string(table, "name", "approvers"),
                                   key_id=_string(table, "key_id", "approvers"), public_key=raw))
    return tuple(pins)


def _decode_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigInvalid("approvers.public_key is not base64") from exc
    if len(raw) != 32:
        raise ConfigInvalid("approvers.public_key must be a raw 32-byte Ed25519 key")
    return raw


def _to_toml(config: AgentConfig) -> dict[str, Any]:
    data: dict[str, Any] = {
        "agent": {"id": config.id, "trust_domain": config.trust_domain, "listen": config.listen,
                  "controller": config.controller, "socket": config.socket},
    }
    if config.mode != "direct":
        data["agent"]["mode"] = config.mode
    if config.approvers:  # an empty list would print as "approvers = []" above [agent]
        data["approvers"] = [{"name": a.name, "key_id": a.key_id,
                              "public_key": base64.b64encode(a.public_key).decode()}
                             for a in config.approvers]
    data["log"] = {"path": config.log_path}
    if config.data.sources:
        data["data"] = data_policy.to_toml(config.data)
    diag = diag_policy.to_toml(config.diag)
    if diag:
        data["diag"] = diag
    inspect = inspect_profile.to_toml(config.inspect)
    if inspect:
        data["inspect"] = inspect
    if config.shell.enabled:
        data["shell"] = shell_policy.to_toml(config.shell)
    for name, section in _SECTIONS.items():
        written = section.to_toml(getattr(config, name))
        if written:
            data[name] = written
    return data



