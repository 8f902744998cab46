"""The [inspect] profile: parsing, normal form, clear errors; and the schedule."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agent.inspect.profile import (
    MIN_INTERVAL,
    InspectProfile,
    InspectProfileInvalid,
    min_interval,
    parse,
    to_toml,
)
from agent.inspect.scheduler import Schedule

FULL: dict[str, Any] = {
    "enabled": True, "interval_seconds": 60, "disk_percent": 90, "inode_percent": 85.5,
    "memory_percent": 95, "swap_percent": 50, "load_per_core": 2.5,
    "services": ["nginx.service", "postgresql@15-main.service"],
    "certificates": ["example.com:443", "[::1]:8443"], "certificate_days": 14,
    "clock_offset_seconds": 2, "data_sources": ["erp"],
    "mounts": {"/var": {"disk_percent": 80}},
}


def test_a_full_profile_parses_and_round_trips() -> None:
    profile = parse(FULL, data_sources=("erp",))
    assert profile.enabled and profile.interval_seconds == 60.0
    assert profile.mount("/var") == (80.0, 85.5) and profile.mount("/") == (90.0, 85.5)
    assert parse(to_toml(profile), data_sources=("erp",)) == profile


def test_nothing_configured_is_disabled_and_empty() -> None:
    assert parse({}) == InspectProfile() and to_toml(InspectProfile()) == {}
    assert parse({}).interval_seconds == 300.0


@pytest.mark.parametrize(("change", "message"), [
    ({"enabled": "yes"}, "inspect.enabled must be true or false"),
    ({"interval_seconds": 10}, "interval_seconds must be a number from 30"),
    ({"interval_seconds": True}, "interval_seconds"),
    ({"disk_percent": 0}, "inspect.disk_percent must be a percentage"),
    ({"memory_percent": 101}, "inspect.memory_percent must be a percentage"),
    ({"swap_percent": "50"}, "swap_percent"),
    ({"load_per_core": -1}, "load_per_core must be a number above 0"),
    ({"services": "nginx"}, "inspect.services must be a list of strings"),
    ({"services": ["nginx service"]}, "is not a systemd unit name"),
    ({"certificates": ["example.com"]}, "is not host:port"),
    ({"certificates": ["example.com:99999"]}, "is not host:port"),
    ({"data_sources": ["crm"]}, "crm not in [[diag.data_sources]]"),
    ({"mounts": {"var": {"disk_percent": 80}}}, "a mount point is an absolute path"),
    ({"mounts": {"/var": {"disk": 80}}}, "must set disk_percent and/or inode_percent"),
    ({"mounts": {"/var": {"disk_percent": 180}}}, "disk_percent must be a percentage"),
    ({"surprise": 1}, "unknown key in [inspect]: surprise"),
])
def test_bad_values_are_refused_clearly(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InspectProfileInvalid, match=re.escape(message)):
        parse(FULL | change, data_sources=("erp",))


def test_certificates_need_a_window() -> None:
    with pytest.raises(InspectProfileInvalid, match=r"needs inspect\.certificate_days"):
        parse({"certificates": ["example.com:443"]})


def test_the_minimum_interval_is_lowered_only_by_the_environment() -> None:
    assert min_interval({}) == MIN_INTERVAL
    assert min_interval({"RMAINT_INSPECT_MIN_INTERVAL": "1"}) == 1.0
    assert min_interval({"RMAINT_INSPECT_MIN_INTERVAL": "0"}) == 0.1
    assert min_interval({"RMAINT_INSPECT_MIN_INTERVAL": "soon"}) == MIN_INTERVAL
    assert parse({"interval_seconds": 1}, shortest=1.0).interval_seconds == 1.0


def test_the_schedule_keeps_its_beat_and_skips_missed_slots() -> None:
    schedule = Schedule(60.0)
    assert schedule.next_start(1000.0, 1005.0) == 1060.0
    assert schedule.next_start(1000.0, 1075.0) == 1075.0  # overran: start at once
    assert schedule.next_start(1000.0, 1250.0) == 1250.0  # missed four slots: not back to back
