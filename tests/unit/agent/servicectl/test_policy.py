"""[[services.allow]]: strict, nothing controllable unless listed, normal form round trip."""

from __future__ import annotations

from typing import Any

import pytest

from agent.servicectl import ServicesConfig, ServicesConfigInvalid, UnknownService, parse, to_toml

SYSTEMD: dict[str, Any] = {"name": "web", "backend": "systemd", "actions": ["status", "reload"]}
PROCESS: dict[str, Any] = {"name": "worker", "backend": "process",
                           "start": ["/usr/bin/python3", "/srv/worker.py"],
                           "pidfile": "/run/rmaint/worker.pid", "actions": ["status", "stop"]}


def test_empty_allows_nothing() -> None:
    assert parse({}) == ServicesConfig() and to_toml(parse({})) == {}
    with pytest.raises(UnknownService):
        parse({}).rule("web")


def test_minimal_entries_round_trip_in_normal_form() -> None:
    config = parse({"allow": [SYSTEMD, PROCESS]})
    web, worker = config.rule("web"), config.rule("worker")
    assert web.unit == "web" and web.verify_timeout == 30.0
    assert worker.stop_signal == "SIGTERM" and worker.reload_signal == "SIGHUP"
    assert worker.stop_timeout == 10.0 and worker.start_settle == 1.0
    assert to_toml(config) == {"allow": [SYSTEMD, PROCESS]}
    assert parse(to_toml(config)) == config


def test_full_entries_are_normalized() -> None:
    full = {**PROCESS, "actions": ["stop", "status", "start", "stop"], "stop_signal": "SIGINT",
            "stop_timeout_seconds": 3, "reload_signal": "SIGUSR1", "start_settle_seconds": 0.2,
            "verify_timeout_seconds": 5, "pidfile": "/run//worker.pid"}
    rule = parse({"allow": [full, {**SYSTEMD, "unit": "nginx.service"}]}).rule("worker")
    assert rule.actions == ("status", "start", "stop") and rule.pidfile == "/run/worker.pid"
    assert (rule.stop_signal, rule.stop_timeout, rule.reload_signal, rule.start_settle) == \
        ("SIGINT", 3.0, "SIGUSR1", 0.2)
    config = parse({"allow": [full, {**SYSTEMD, "unit": "nginx.service"}]})
    assert parse(to_toml(config)) == config
    assert to_toml(config)["allow"][1]["unit"] == "nginx.service"


@pytest.mark.parametrize(("entry", "message"), [
    ({**SYSTEMD, "backend": "init.d"}, "backend must be"),
    ({**SYSTEMD, "name": "-web"}, "name must be"),
    ({**SYSTEMD, "name": "web; reboot"}, "name must be"),
    ({**SYSTEMD, "unit": "--root=/"}, "unit must be a systemd unit name"),
    ({**SYSTEMD, "unit": "a b"}, "unit must be a systemd unit name"),
    ({**SYSTEMD, "actions": []}, "actions must be a non-empty list"),
    ({**SYSTEMD, "actions": ["kill"]}, "actions must be a non-empty list"),
    ({**SYSTEMD, "start": ["/bin/true"]}, "unknown key"),
    ({**SYSTEMD, "verify_timeout_seconds": 0}, "verify_timeout_seconds must be"),
    ({**PROCESS, "start": "python3 worker.py"}, "start is required"),
    ({**PROCESS, "start": ["python3", "worker.py"]}, "program must be an absolute path"),
    ({**PROCESS, "pidfile": "worker.pid"}, "pidfile is required"),
    ({**PROCESS, "stop_signal": "TERM"}, "stop_signal must be a signal name"),
    ({**PROCESS, "reload_signal": "SIG_IGN"}, "reload_signal must be a signal name"),
    ({**PROCESS, "stop_timeout_seconds": -1}, "stop_timeout_seconds must be"),
    ({**PROCESS, "unit": "x"}, "unknown key"),
])
def test_bad_entries_are_refused_with_the_key_named(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ServicesConfigInvalid, match=message):
        parse({"allow": [entry]})


def test_duplicates_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ServicesConfigInvalid, match="duplicate name web"):
        parse({"allow": [SYSTEMD, SYSTEMD]})
    with pytest.raises(ServicesConfigInvalid, match="unknown key in \\[services\\]"):
        parse({"deny": []})
    with pytest.raises(ServicesConfigInvalid, match="array of tables"):
        parse({"allow": SYSTEMD})
