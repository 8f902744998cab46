"""SPIFFE-style identities carried in certificate URI SANs."""

from __future__ import annotations

import re
from dataclasses import dataclass

ROLES = ("controller", "agent", "engineer", "auditor", "admin")
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


class IdentityError(ValueError):
    """A name, trust domain or SPIFFE URI that is not acceptable."""


def check_name(name: str, what: str = "name") -> str:
    """Names of agents and people: lower-case letters, digits and dashes, 1 to 63."""
    if not _NAME.fullmatch(name):
        raise IdentityError(f"invalid {what} {name!r}: use a-z, 0-9 and '-', at most 63")
    return name


def check_trust_domain(domain: str) -> str:
    if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
        raise IdentityError(f"invalid trust domain {domain!r}")
    return domain


@dataclass(frozen=True)
class Identity:
    trust_domain: str
    role: str
    name: str = ""

    def __post_init__(self) -> None:
        check_trust_domain(self.trust_domain)
        if self.role not in ROLES:
            raise IdentityError(f"unknown role {self.role!r}")
        if self.role == "controller":
            if self.name:
                raise IdentityError("the controller identity has no name")
        else:
            check_name(self.name)

    @property
    def uri(self) -> str:
        base = f"spiffe://{self.trust_domain}/{self.role}"
        return base if self.role == "controller" else f"{base}/{self.name}"

    @property
    def dns_name(self) -> str:
        """The DNS SAN that TLS clients check, via target-name override."""
        if self.role == "controller":
            return f"controller.{self.trust_domain}"
        return f"{self.name}.{self.role}.{self.trust_domain}"

    @classmethod
    def parse(cls, uri: str) -> Identity:
        if not uri.startswith("spiffe://"):
            raise IdentityError("not a SPIFFE URI")
        domain, _, path = uri[len("spiffe://"):].partition("/")
        parts = path.split("/")
        if parts == ["controller"]:
            return cls(domain, "controller")
        if len(parts) != 2:
            raise IdentityError(f"unexpected SPIFFE path {path!r}")
        return cls(domain, parts[0], parts[1])

    def __str__(self) -> str:
        return self.uri
