"""The [client] section of <home>/rmctl.toml: who this home is and where its controller is.

One loader serves the controller host's home (admin.key/admin.crt) and people's homes
(identity.key/identity.crt): the section names its key, certificate and CA files,
relative to the home.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.client._validity import read_validity
from controller.client.errors import ConfigError
from pki.files import reason
from pki.identity import Identity, IdentityError

CONFIG_NAME = "rmctl.toml"
HOME_ENV = "RMAINT_HOME"
DEFAULT_HOME = "~/.rmaint"
_FIELDS = ("role", "name", "controller", "trust_domain", "key", "cert", "ca")
_HINT = "run 'rmctl login --token T' (engineers, auditors) or 'rmctl init' (controller host)"


def default_home() -> Path:
    """``$RMAINT_HOME`` or ``~/.rmaint``, with ``~`` expanded."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()


@dataclass(frozen=True)
class ClientConfig:
    """A usable client identity; paths are absolute."""

    home: Path
    role: str
    name: str
    controller: str
    trust_domain: str
    key: Path
    cert: Path
    ca: Path

    @property
    def identity(self) -> Identity:
        return Identity(self.trust_domain, self.role, self.name)

    def check_certificate(self, now: float) -> None:
        """Raise ConfigError if the certificate cannot be read or has expired at ``now``."""
        try:
            _, not_after = read_validity(self.cert)
        except OSError as exc:
            raise ConfigError(f"cannot read the certificate {self.cert}: "
                              f"{reason(exc, with_file=False)}") from exc
        except ValueError as exc:  # the PEM or DER does not parse: x509's words are long
            raise ConfigError(f"cannot read the certificate {self.cert}: not a PEM "
                              "certificate") from exc
        try:  # gRPC would only log its own complaints and call the controller unreachable
            ca = self.ca.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the CA certificate {self.ca}: "
                              f"{reason(exc, with_file=False)}") from exc
        if b"-----BEGIN CERTIFICATE-----" not in ca:
            raise ConfigError(f"cannot read the CA certificate {self.ca}: not a PEM "
                              "certificate")
        if not_after <= now:
            local = dt.datetime.fromtimestamp(not_after, dt.UTC).astimezone().isoformat(
                timespec="seconds")
            raise ConfigError(f"your certificate expired at {local}: ask for a new token "
                              "and run 'rmctl login --token T'")


def load_config(home: Path) -> ClientConfig:
    """Read and check ``<home>/rmctl.toml`` [client]; raise ConfigError with a way out."""
    section = _client_section(read_toml(home))
    missing = [f for f in _FIELDS if f not in section]
    if missing:
        raise ConfigError(f"{home / CONFIG_NAME}: [client] lacks {', '.join(missing)}")
    wrong = [f for f in _FIELDS if not isinstance(section[f], str) or not section[f]]
    if wrong:
        raise ConfigError(f"{home / CONFIG_NAME}: [client] {', '.join(wrong)} must be "
                          "non-empty text")
    config = ClientConfig(
        home=home, role=section["role"], name=section["name"],
        controller=section["controller"], trust_domain=section["trust_domain"],
        key=home / section["key"], cert=home / section["cert"], ca=home / section["ca"],
    )
    try:
        Identity(config.trust_domain, config.role, config.name)
    except IdentityError as exc:
        raise ConfigError(f"{home / CONFIG_NAME}: {exc}") from exc
    for path in (config.key, config.cert, config.ca):
        if not path.exists():
            raise ConfigError(f"{path} is missing: {_HINT}")
        if not path.is_file():
            raise ConfigError(f"{path} is not a file: see [client] in {home / CONFIG_NAME}")
    return config


def read_toml(home: Path) -> dict[str, Any]:
    """The whole of ``<home>/rmctl.toml``; ConfigError if absent or not TOML."""
    path = home / CONFIG_NAME
    if not home.is_dir():
        raise ConfigError(f"no rmaint home at {home}: {_HINT}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist: {_HINT}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {reason(exc, with_file=False)}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def _client_section(document: dict[str, Any]) -> dict[str, Any]:
    section = document.get("client")
    if not isinstance(section, dict):
        raise ConfigError(f"{CONFIG_NAME} has no [client] section: {_HINT}")
    return section


def write_client_section(home: Path, section: dict[str, str]) -> None:
    """Replace the [client] section of ``<home>/rmctl.toml``, keeping other sections."""
    import tomli_w

    path = home / CONFIG_NAME
    document = read_toml(home) if path.exists() else {}
    document["client"] = dict(section)
    home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(tomli_w.dumps(document), encoding="utf-8")
    os.replace(tmp, path)
