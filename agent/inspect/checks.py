"""The inspection's checks, built on the diagnostics catalogue's readings.

Each check belongs to a family (``disk``, ``memory``, ``load``, ``service``, ``tls``,
``clock``, ``datasource``) and yields findings only for what breaches a threshold. A
family that ran to the end is *completed*: its earlier findings that are absent now have
cleared. A family that fails or overruns the deadline yields one ``<family>.error``
finding instead, never an exception, and its earlier findings stay as they were.
Messages are redacted here, on the agent, like all diagnostic output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent.diag import _tls, database, services, system
from agent.diag.policy import DiagConfig
from agent.inspect.profile import InspectProfile
from agent.redact import redact_text

WARNING, UNKNOWN, ERROR = "warning", "unknown", "error"
DEFAULT_DEADLINE = 20.0
DAY = 86400.0


@dataclass(frozen=True)
class Finding:
    """One breach, or a check that could not be done. ``key`` is stable across runs."""

    key: str
    severity: str
    message: str
    value: float | None = None
    threshold: float | None = None

    @property
    def family(self) -> str:
        return self.key.split(".", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "severity": self.severity, "message": self.message,
                "value": self.value, "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(str(data["key"]), str(data["severity"]), str(data["message"]),
                   data.get("value"), data.get("threshold"))


@dataclass(frozen=True)
class Outcome:
    """What one run found, and the families that ran to the end."""

    completed: tuple[str, ...]
    findings: tuple[Finding, ...]


class Skipped(Exception):
    """A check that cannot run yet (no clock reading from the controller): no verdict."""


ClockOffset = Callable[[], float | None]
_Check = Callable[[], Awaitable[list[Finding]]]


async def run_checks(profile: InspectProfile, diag: DiagConfig, *, clock_offset: ClockOffset,
                     deadline: float = DEFAULT_DEADLINE) -> Outcome:
    """Run every check the profile asks for, concurrently, each within ``deadline``."""
    checks = _checks(profile, diag, clock_offset)
    results = await asyncio.gather(*(_guarded(name, check, deadline)
                                     for name, check in checks.items()))
    completed = tuple(name for name, (done, _) in zip(checks, results, strict=True) if done)
    findings = tuple(_redacted(f) for _, found in results for f in found)
    return Outcome(completed, findings)


def _checks(profile: InspectProfile, diag: DiagConfig,
            clock_offset: ClockOffset) -> dict[str, _Check]:
    checks: dict[str, _Check] = {}
    if profile.disk_percent is not None or profile.inode_percent is not None or profile.mounts:
        checks["disk"] = lambda: check_disks(profile)
    if profile.memory_percent is not None or profile.swap_percent is not None:
        checks["memory"] = lambda: check_memory(profile)
    if profile.load_per_core is not None:
        checks["load"] = lambda: check_load(profile)
    if profile.services:
        checks["service"] = lambda: check_services(profile)
    if profile.certificates:
        checks["tls"] = lambda: check_certificates(profile)
    if profile.clock_offset_seconds is not None:
        checks["clock"] = lambda: check_clock(profile, clock_offset)
    if profile.data_sources:
        checks["datasource"] = lambda: check_data_sources(profile, diag)
    return checks


async def _guarded(family: str, check: _Check, deadline: float) -> tuple[bool, list[Finding]]:
    try:
        async with asyncio.timeout(deadline):
            return True, await check()
    except Skipped:
        return False, []
    except TimeoutError:
        return False, [Finding(f"{family}.error", ERROR,
                               f"{family} check did not finish within {deadline:g} s")]
    except Exception as exc:  # a check that fails is a finding, never a crashed run
        return False, [Finding(f"{family}.error", ERROR,
                               f"{family} check failed: {type(exc).__name__}: {exc}")]


def _redacted(finding: Finding) -> Finding:
    message, _ = redact_text(finding.message)
    return Finding(finding.key, finding.severity, message[:500], finding.value,
                   finding.threshold)


def _over(key: str, what: str, value: float | None, threshold: float | None,
          unit: str = "%") -> list[Finding]:
    if value is None or threshold is None or value < threshold:
        return []
    return [Finding(key, WARNING, f"{what} is {value:g}{unit}, threshold {threshold:g}{unit}",
                    value, threshold)]


async def check_disks(profile: InspectProfile) -> list[Finding]:
    found: list[Finding] = []
    filesystems = (await system.disks())["filesystems"]
    for fs in filesystems:
        mount = fs["mountpoint"]
        disk, inode = profile.mount(mount)
        found += _over(f"disk.use:{mount}", f"disk use of {mount}", fs["percent"], disk)
        found += _over(f"disk.inodes:{mount}", f"inode use of {mount}",
                       fs["inodes_percent"], inode)
    mounted = {fs["mountpoint"] for fs in filesystems}
    # A mount the customer set thresholds for and that is gone is worth a look too.
    return found + [Finding(f"disk.mounted:{m.mountpoint}", WARNING,
                            f"{m.mountpoint} has thresholds in [inspect.mounts] but is not "
                            "a mounted filesystem")
                    for m in profile.mounts if m.mountpoint not in mounted]


async def check_memory(profile: InspectProfile) -> list[Finding]:
    reading = await system.memory()
    found = _over("memory.use", "memory use", reading["memory"]["percent"],
                  profile.memory_percent)
    if reading["swap"]["total_bytes"]:  # no swap configured: nothing to fill
        found += _over("memory.swap", "swap use", reading["swap"]["percent"],
                       profile.swap_percent)
    return found


async def check_load(profile: InspectProfile) -> list[Finding]:
    reading = (await system.system())["cpu"]
    if reading["load_average"] is None:
        return [Finding("load.per_core", UNKNOWN, "this system keeps no load average")]
    per_core = round(reading["load_average"][0] / max(1, reading["logical"] or 1), 2)
    return _over("load.per_core", "1-minute load per core", per_core, profile.load_per_core,
                 unit="")


async def check_services(profile: InspectProfile) -> list[Finding]:
    reading = await services.services(services.ServicesQuery())
    if not reading["available"]:
        return [Finding(f"service.running:{unit}", UNKNOWN,
                        f"cannot check {unit}: {reading['reason']}")
                for unit in profile.services]
    states = {u["unit"]: u["active"] for u in reading["units"]}
    return [Finding(f"service.running:{unit}", WARNING,
                    f"{unit} is {states.get(unit) or 'not loaded'}, it must be running")
            for unit in profile.services if states.get(unit) != "active"]


async def check_certificates(profile: InspectProfile) -> list[Finding]:
    found = await asyncio.gather(*(_certificate(ep, profile.certificate_days or 0.0)
                                   for ep in profile.certificates))
    return [f for f in found if f is not None]


async def _certificate(endpoint: str, days: float) -> Finding | None:
    host, _, port = endpoint.rpartition(":")
    key = f"tls.expiry:{endpoint}"
    try:
        facts = await _tls.inspect(host.strip("[]"), int(port), host.strip("[]"))
    except (OSError, TimeoutError) as exc:
        return Finding(key, ERROR, f"cannot fetch the certificate of {endpoint}: {exc}")
    left = round(facts["expires_in_seconds"] / DAY, 1)
    if left >= days:
        return None
    verb = "expired" if left < 0 else "expires"
    return Finding(key, WARNING, f"certificate of {endpoint} {verb} in {left:g} days "
                   f"(not after {time.strftime('%Y-%m-%d', time.gmtime(facts['not_after_at']))})"
                   f", threshold {days:g} days", left, days)


async def check_clock(profile: InspectProfile, clock_offset: ClockOffset) -> list[Finding]:
    offset = clock_offset()
    if offset is None:
        raise Skipped("the controller's time is not known yet")
    size = round(abs(offset), 3)
    return _over("clock.offset", "clock offset against the controller", size,
                 profile.clock_offset_seconds, unit=" s")


async def check_data_sources(profile: InspectProfile, diag: DiagConfig) -> list[Finding]:
    sources = [diag.data_source(name) for name in profile.data_sources]
    readings = await asyncio.gather(*(database.database(database.DatabaseQuery(s))
                                      for s in sources if s is not None))
    return [Finding(f"datasource.reachable:{r['name']}", WARNING,
                    f"data source {r['name']} is unreachable: {r.get('error') or 'no answer'}")
            for r in readings if not r["reachable"]]
