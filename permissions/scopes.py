"""The scopes a grant can allow, as named in the architecture."""

from __future__ import annotations

from collections.abc import Iterable

from permissions._errors import MalformedStatement

SCOPES: dict[str, str] = {
    "diag.read": "system, CPU, memory, disks, network, processes, services",
    "diag.logs": "reading customer-allowlisted logs (redacted)",
    "diag.files": "stat and hash of customer-allowlisted paths",
    "data.read": "structured reads of allowlisted tables, masked columns masked",
    "data.write": "preview and apply corrections (apply also needs change consent)",
    "config.write": "preview and apply changes of allowlisted parameters",
    "service.control": "status, start, stop, restart of allowlisted services",
    "shell": "interactive login through the SSH gateway, recorded",
    "device.exec": "allowlisted commands on agentless devices behind the agent",
    "inspect": "the periodic inspection the customer configured locally",
}


def parse_scopes(names: Iterable[str]) -> tuple[str, ...]:
    """Return the scopes sorted and deduplicated; raise on an unknown or empty set."""
    scopes = sorted(set(names))
    if not scopes:
        raise MalformedStatement("no scope given")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise MalformedStatement(f"unknown scope: {', '.join(unknown)}")
    return tuple(scopes)
