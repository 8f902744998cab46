"""The systemd backend: argv construction, ``systemctl show`` parsing, verified actions.

systemd cannot run in this test container, so the one call to ``systemctl`` is
replaced by ``FakeSystemctl``, which records the argv and answers in the layout
``systemctl show`` prints; everything around that call is the real code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.servicectl import (
    ActionFailed,
    ActionNotAllowed,
    Host,
    StateChanged,
    SystemdUnavailable,
    UnknownService,
    apply,
    parse,
    preview,
    status,
)
from agent.servicectl._systemd import (
    NOT_AVAILABLE,
    action_argv,
    parse_show,
    parse_timestamp,
    show_argv,
    to_state,
)

# Output of `systemctl show --property=... -- nginx.service` in its key=value layout
# (systemctl prints the properties in its own order, not the order asked for).
SHOW_RUNNING = ("MainPID=1187\nLoadState=loaded\nActiveState=active\nSubState=running\n"
                "StateChangeTimestamp=Wed 2026-09-30 19:37:07 UTC\n")
SHOW_STOPPED = ("MainPID=0\nLoadState=loaded\nActiveState=inactive\nSubState=dead\n"
                "StateChangeTimestamp=Thu 2026-10-01 08:00:00 UTC\n")
SHOW_FAILED = ("MainPID=0\nLoadState=loaded\nActiveState=failed\nSubState=failed\n"
               "StateChangeTimestamp=Thu 2026-10-01 08:00:00 UTC\n")
SHOW_STOPPING = ("MainPID=1187\nLoadState=loaded\nActiveState=deactivating\nSubState=stop-sigterm\n"
                 "StateChangeTimestamp=Thu 2026-10-01 08:00:00 UTC\n")
SHOW_MISSING = ("MainPID=0\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n"
                "StateChangeTimestamp=\n")
SINCE = datetime(2026, 9, 30, 19, 37, 7, tzinfo=UTC).timestamp()
POLICY = {"allow": [{"name": "web", "backend": "systemd", "unit": "nginx.service",
                     "actions": ["status", "start", "stop", "restart", "reload"],
                     "verify_timeout_seconds": 2}]}


class FakeClock:
    """A monotonic clock that only ``sleep`` moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeSystemctl:
    """Records argv; ``show`` answers ``states`` in turn (the last one repeats)."""

    def __init__(self, *states: str, action_code: int = 0) -> None:
        self.states = list(states)
        self.calls: list[list[str]] = []
        self.action_code = action_code

    def __call__(self, argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
        self.calls.append(list(argv))
        if argv[1] == "show":
            return 0, self.states.pop(0) if len(self.states) > 1 else self.states[0], ""
        return self.action_code, "", "Job for nginx.service failed." if self.action_code else ""

    def actions(self) -> list[list[str]]:
        return [call[1:] for call in self.calls if call[1] != "show"]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """Stands for /run/systemd/system on a host where systemd runs."""
    path = tmp_path / "systemd-system"
    path.mkdir()
    return path


def _host(fake: FakeSystemctl, marker: Path, clock: FakeClock | None = None) -> Host:
    clock = clock or FakeClock()
    return Host(clock=clock, sleep=clock.sleep, systemctl=fake, systemd_marker=marker)


def test_argv_puts_the_unit_after_a_double_dash() -> None:
    assert show_argv("/usr/bin/systemctl", "nginx.service") == [
        "/usr/bin/systemctl", "show", "--no-pager",
        "--property=LoadState,ActiveState,SubState,MainPID,StateChangeTimestamp",
        "--", "nginx.service"]
    assert action_argv("/usr/bin/systemctl", "restart", "nginx.service") == [
        "/usr/bin/systemctl", "--no-pager", "--no-ask-password", "restart", "--",
        "nginx.service"]


def test_show_output_is_parsed() -> None:
    running = to_state(parse_show(SHOW_RUNNING), "nginx.service")
    assert (running.state, running.pid, running.detail) == ("running", 1187, "running")
    assert running.since == SINCE
    assert to_state(parse_show(SHOW_STOPPED), "u").to_dict()["state"] == "stopped"
    assert to_state(parse_show(SHOW_STOPPED), "u").pid is None
    assert to_state(parse_show(SHOW_FAILED), "u").state == "failed"
    assert to_state(parse_show(SHOW_STOPPING), "u").state == "stopping"
    with pytest.raises(ActionFailed, match="not loaded \\(not-found\\)"):
        to_state(parse_show(SHOW_MISSING), "nginx.service")


@pytest.mark.parametrize("value", ["", "n/a", "Wed 2026-09-30 19:37:07 CEST",
                                   "Wed 2026-13-30 19:37:07 UTC", "@1790883427"])
def test_unreadable_timestamps_are_none(value: str) -> None:
    assert parse_timestamp(value) is None


def test_without_systemd_the_host_is_told_so(tmp_path: Path) -> None:
    fake = FakeSystemctl(SHOW_RUNNING)
    host = _host(fake, tmp_path / "no-such-marker")
    with pytest.raises(SystemdUnavailable, match=f"^{NOT_AVAILABLE}$"):
        status(parse(POLICY), "web", host)
    assert fake.calls == []


def test_this_container_has_no_systemd() -> None:
    """The real default marker: this container runs no systemd, and says so."""
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here")
    with pytest.raises(SystemdUnavailable, match="systemd is not available on this host"):
        status(parse(POLICY), "web")


def test_status_reports_state_pid_and_since(marker: Path) -> None:
    result = status(parse(POLICY), "web", _host(FakeSystemctl(SHOW_RUNNING), marker))
    assert result == {"name": "web", "backend": "systemd", "state": "running", "pid": 1187,
                      "since": SINCE, "detail": "running"}


def test_stop_is_polled_until_verified(marker: Path) -> None:
    fake = FakeSystemctl(SHOW_RUNNING, SHOW_RUNNING, SHOW_STOPPING, SHOW_STOPPED)
    host = _host(fake, marker)
    shown = preview(parse(POLICY), "web", "stop", host)
    assert (shown.current.state, shown.expected, shown.needs_consent) == ("running", "stopped",
                                                                          True)
    result = apply(parse(POLICY), shown, host)
    assert result["verified"] and result["after"]["state"] == "stopped"
    assert fake.actions() == [["--no-pager", "--no-ask-password", "stop", "--", "nginx.service"]]


def test_an_action_that_never_takes_effect_fails_clearly(marker: Path) -> None:
    clock = FakeClock()
    fake = FakeSystemctl(SHOW_RUNNING)  # stays running whatever is asked
    host = _host(fake, marker, clock)
    shown = preview(parse(POLICY), "web", "stop", host)
    with pytest.raises(ActionFailed, match="stop was not verified within 2 s; the service is "
                                           "running \\(pid 1187\\)"):
        apply(parse(POLICY), shown, host)
    assert clock.now >= 102.0


def test_systemctl_failure_is_reported(marker: Path) -> None:
    host = _host(FakeSystemctl(SHOW_STOPPED, action_code=1), marker)
    shown = preview(parse(POLICY), "web", "start", host)
    with pytest.raises(ActionFailed, match=r"systemctl start nginx\.service failed: Job for"):
        apply(parse(POLICY), shown, host)


def test_restart_needs_a_new_main_pid(marker: Path) -> None:
    new_pid = SHOW_RUNNING.replace("1187", "2001")
    fake = FakeSystemctl(SHOW_RUNNING, SHOW_RUNNING, SHOW_RUNNING, new_pid)
    host = _host(fake, marker)
    result = apply(parse(POLICY), preview(parse(POLICY), "web", "restart", host), host)
    assert result["after"]["pid"] == 2001


def test_a_state_change_after_preview_refuses(marker: Path) -> None:
    fake = FakeSystemctl(SHOW_RUNNING, SHOW_STOPPED)
    host = _host(fake, marker)
    shown = preview(parse(POLICY), "web", "stop", host)
    with pytest.raises(StateChanged, match="stopped now, not running \\(pid 1187\\)"):
        apply(parse(POLICY), shown, host)
    assert fake.actions() == []


def test_disallowed_actions_and_names_run_nothing(marker: Path) -> None:
    fake = FakeSystemctl(SHOW_RUNNING)
    host = _host(fake, marker)
    narrow = parse({"allow": [{**POLICY["allow"][0], "actions": ["status"]}]})
    with pytest.raises(ActionNotAllowed):
        preview(narrow, "web", "stop", host)
    with pytest.raises(ActionNotAllowed):
        preview(parse(POLICY), "web", "status", host)
    with pytest.raises(UnknownService):
        preview(parse(POLICY), "nginx.service", "stop", host)
    assert fake.calls == []


@given(st.text(max_size=80))
def test_hostile_names_never_reach_systemctl(name: str) -> None:
    fake = FakeSystemctl(SHOW_RUNNING)
    host = Host(systemctl=fake, systemd_marker=Path("/"))
    if name == "web":
        return
    with pytest.raises(UnknownService):
        status(parse(POLICY), name, host)
    assert fake.calls == []
