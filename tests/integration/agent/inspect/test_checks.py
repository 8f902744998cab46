"""The inspection's checks against this host's real readings."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from agent.diag import system
from agent.diag.policy import DataSource, DiagConfig
from agent.inspect import checks
from agent.inspect.checks import run_checks
from agent.inspect.profile import InspectProfile, MountThresholds
from pki import certs
from pki.files import write_key, write_public
from pki.identity import Identity


def _no_offset() -> float | None:
    return None


async def _root_use() -> tuple[str, float]:
    filesystems = (await system.disks())["filesystems"]
    if not filesystems:
        pytest.fail("this host reports no real filesystem")
    fs = filesystems[0]
    return fs["mountpoint"], fs["percent"]


async def test_disk_threshold_just_below_real_use_fires_just_above_does_not() -> None:
    mount, used = await _root_use()
    below = await run_checks(InspectProfile(enabled=True, disk_percent=max(0.1, used - 1)),
                             DiagConfig(), clock_offset=_no_offset)
    (finding,) = [f for f in below.findings if f.key == f"disk.use:{mount}"]
    assert finding.severity == "warning" and finding.threshold == max(0.1, used - 1)
    assert finding.value is not None and abs(finding.value - used) < 1
    above = await run_checks(InspectProfile(enabled=True, disk_percent=min(100, used + 1)),
                             DiagConfig(), clock_offset=_no_offset)
    assert [f.key for f in above.findings if f.key == f"disk.use:{mount}"] == []
    assert above.completed == ("disk",)


async def test_a_mount_override_wins_over_the_default() -> None:
    mount, used = await _root_use()
    profile = InspectProfile(enabled=True, disk_percent=100,
                             mounts=(MountThresholds(mount, disk_percent=max(0.1, used - 1)),))
    outcome = await run_checks(profile, DiagConfig(), clock_offset=_no_offset)
    assert f"disk.use:{mount}" in {f.key for f in outcome.findings}


async def test_a_mount_with_thresholds_that_is_not_mounted_is_a_finding() -> None:
    profile = InspectProfile(enabled=True, mounts=(MountThresholds("/no/such/mount", 90),))
    outcome = await run_checks(profile, DiagConfig(), clock_offset=_no_offset)
    assert [f.key for f in outcome.findings] == ["disk.mounted:/no/such/mount"]


async def test_memory_against_real_use() -> None:
    used = psutil.virtual_memory().percent
    low = await run_checks(InspectProfile(enabled=True, memory_percent=max(0.1, used - 5)),
                           DiagConfig(), clock_offset=_no_offset)
    high = await run_checks(InspectProfile(enabled=True, memory_percent=min(100, used + 5)),
                            DiagConfig(), clock_offset=_no_offset)
    assert [f.key for f in low.findings] == ["memory.use"]
    assert high.findings == () and high.completed == ("memory",)


async def test_load_against_the_real_load_average() -> None:
    per_core = psutil.getloadavg()[0] / (psutil.cpu_count() or 1)
    over = await checks.check_load(InspectProfile(enabled=True, load_per_core=0.001))
    assert [f.key for f in over] == (["load.per_core"] if per_core > 0.001 else [])
    assert await checks.check_load(InspectProfile(enabled=True, load_per_core=1000)) == []


async def test_a_load_average_the_system_does_not_keep_is_unknown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Every Linux keeps one; a platform that keeps none is simulated here.
    def unavailable() -> tuple[float, float, float]:
        raise OSError("load average not obtainable")
    monkeypatch.setattr(psutil, "getloadavg", unavailable)
    [finding] = await checks.check_load(InspectProfile(enabled=True, load_per_core=0.001))
    assert (finding.key, finding.severity) == ("load.per_core", "unknown")


async def test_services_say_when_they_cannot_be_checked() -> None:
    outcome = await run_checks(InspectProfile(enabled=True, services=("nginx.service",)),
                               DiagConfig(), clock_offset=_no_offset)
    (finding,) = outcome.findings
    assert finding.key == "service.running:nginx.service"
    if not Path("/run/systemd/system").is_dir():
        assert finding.severity == "unknown"
        assert "cannot check nginx.service: systemd is not running" in finding.message
    else:
        assert finding.severity in ("warning", "unknown")


async def test_clock_offset_is_skipped_until_known_then_checked() -> None:
    profile = InspectProfile(enabled=True, clock_offset_seconds=5)
    unknown = await run_checks(profile, DiagConfig(), clock_offset=_no_offset)
    assert unknown.completed == () and unknown.findings == ()
    off = await run_checks(profile, DiagConfig(), clock_offset=lambda: -7.25)
    (finding,) = off.findings
    assert finding.key == "clock.offset" and finding.value == 7.25
    fine = await run_checks(profile, DiagConfig(), clock_offset=lambda: 0.5)
    assert fine.findings == () and fine.completed == ("clock",)


async def test_an_unreachable_data_source_is_a_finding(tmp_path: Path) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    diag = DiagConfig(data_sources=(
        DataSource("erp", "postgresql", host="127.0.0.1", port=port, database="erp",
                   user="monitor", password="s3cret-pw"),  # noqa: S106  # planted
        DataSource("cache", "sqlite", path=str(tmp_path / "missing.db"))))
    outcome = await run_checks(InspectProfile(enabled=True, data_sources=("erp", "cache")),
                               diag, clock_offset=_no_offset)
    keys = {f.key for f in outcome.findings}
    assert keys == {"datasource.reachable:erp", "datasource.reachable:cache"}
    assert all("s3cret-pw" not in f.message for f in outcome.findings)


async def test_a_failing_check_is_an_error_finding_not_a_crash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken() -> dict[str, object]:
        raise OSError("no /proc here")

    monkeypatch.setattr(system, "memory", broken)
    outcome = await run_checks(InspectProfile(enabled=True, memory_percent=50, disk_percent=100),
                               DiagConfig(), clock_offset=_no_offset)
    assert "memory" not in outcome.completed and "disk" in outcome.completed
    (error,) = [f for f in outcome.findings if f.key == "memory.error"]
    assert error.severity == "error" and "no /proc here" in error.message


async def test_a_check_that_overruns_the_deadline_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow() -> dict[str, object]:
        await asyncio.sleep(30)
        return {}

    monkeypatch.setattr(system, "memory", slow)
    outcome = await run_checks(InspectProfile(enabled=True, memory_percent=50), DiagConfig(),
                               clock_offset=_no_offset, deadline=0.2)
    assert [f.key for f in outcome.findings] == ["memory.error"]
    assert "within 0.2 s" in outcome.findings[0].message


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[int]:
    """A TLS server on loopback whose certificate expires in 3 days."""
    ca_key, key = certs.generate_key(), certs.generate_key()
    ca = certs.create_ca(ca_key, "example.test", now=time.time())
    cert = certs.issue(ca_key, ca, key.public_key(), Identity("example.test", "controller"),
                       now=time.time(), lifetime=dt.timedelta(days=3), ip_addresses=("127.0.0.1",))
    write_key(tmp_path / "tls.key", key)
    write_public(tmp_path / "tls.crt", certs.cert_pem(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")

    async def answer(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_a_certificate_expiring_within_the_window_is_a_finding(tls_server: int) -> None:
    endpoint = f"127.0.0.1:{tls_server}"
    soon = await run_checks(InspectProfile(enabled=True, certificates=(endpoint,),
                                           certificate_days=14), DiagConfig(),
                            clock_offset=_no_offset)
    (finding,) = soon.findings
    assert finding.key == f"tls.expiry:{endpoint}" and finding.value is not None
    assert 2.5 < finding.value <= 3.0
    later = await run_checks(InspectProfile(enabled=True, certificates=(endpoint,),
                                            certificate_days=1), DiagConfig(),
                             clock_offset=_no_offset)
    assert later.findings == ()


def test_findings_are_redacted() -> None:
    found = checks._redacted(checks.Finding("x.y", "warning",
                                            "failed: postgresql://u:hunter2@db/x"))
    assert "hunter2" not in found.message
