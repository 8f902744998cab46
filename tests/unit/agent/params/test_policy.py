"""[[params.files]]: strict, nothing changeable unless listed, normal form round trip."""

from __future__ import annotations

from typing import Any

import pytest

from agent.params import ParamsConfig, ParamsConfigInvalid, UnknownParamFile, parse, to_toml

ENTRY: dict[str, Any] = {"name": "app", "path": "/etc/app/app.toml", "format": "toml",
                         "keys": ["server.port", "log.level"]}


def test_empty_allows_nothing() -> None:
    config = parse({})
    assert config == ParamsConfig()
    assert to_toml(config) == {}
    with pytest.raises(UnknownParamFile):
        config.file("app")


def test_minimal_entry_round_trips_in_normal_form() -> None:
    config = parse({"files": [ENTRY]})
    entry = config.file("app")
    assert entry.validate == () and entry.backup_dir is None and entry.max_bytes == 1 << 20
    assert to_toml(config) == {"files": [ENTRY]}
    assert parse(to_toml(config)) == config


def test_full_entry_is_normalized() -> None:
    full = {**ENTRY, "path": "/etc//app/./app.toml", "keys": ["a", "b", "a"],
            "validate": ["/usr/sbin/nginx", "-t"], "validate_timeout_seconds": 5,
            "backup_dir": "/var/backups/app/", "max_bytes": 4096}
    entry = parse({"files": [full]}).file("app")
    assert entry.path == "/etc/app/app.toml" and entry.keys == ("a", "b")
    assert entry.validate == ("/usr/sbin/nginx", "-t") and entry.validate_timeout == 5.0
    assert entry.backup_dir == "/var/backups/app" and entry.max_bytes == 4096
    assert parse(to_toml(parse({"files": [full]}))) == parse({"files": [full]})


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "../x"}, "name must be"),
    ({"name": ""}, "name must be"),
    ({"path": "etc/app.toml"}, "path must be an absolute path"),
    ({"path": "/etc/../app.toml"}, "path must be an absolute path"),
    ({"path": "/etc/app\x00.toml"}, "path must be an absolute path"),
    ({"format": "xml"}, "format must be one of"),
    ({"keys": []}, "keys must be a non-empty list"),
    ({"keys": "server.port"}, "keys must be a non-empty list"),
    ({"keys": ["server..port"]}, "not a valid key path"),
    ({"keys": ["server port"]}, "not a valid key path"),
    ({"keys": ["a\nb"]}, "not a valid key path"),
    ({"validate": "nginx -t"}, "validate must be a non-empty list"),
    ({"validate": ["nginx", "-t"]}, "program must be an absolute path"),
    ({"validate_timeout_seconds": 0}, "validate_timeout_seconds must be"),
    ({"validate_timeout_seconds": True}, "validate_timeout_seconds must be"),
    ({"validate_timeout_seconds": 601}, "validate_timeout_seconds must be"),
    ({"max_bytes": 0}, "max_bytes must be"),
    ({"backup_dir": "relative"}, "backup_dir must be an absolute path"),
    ({"surprise": 1}, "unknown key in params.files[0]: surprise"),
])
def test_bad_entries_are_refused_with_the_key_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsConfigInvalid, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse({"files": [{**ENTRY, **change}]})


def test_ini_and_kv_keys_may_hold_dots_freely() -> None:
    entry = {**ENTRY, "format": "kv", "keys": ["net.ipv4.ip_forward"]}
    assert parse({"files": [entry]}).file("app").keys == ("net.ipv4.ip_forward",)


def test_duplicate_names_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ParamsConfigInvalid, match="duplicate name app"):
        parse({"files": [ENTRY, ENTRY]})
    with pytest.raises(ParamsConfigInvalid, match="unknown key in \\[params\\]: other"):
        parse({"other": 1})
    with pytest.raises(ParamsConfigInvalid, match="array of tables"):
        parse({"files": ENTRY})
    with pytest.raises(ParamsConfigInvalid, match="must be a table"):
        parse({"files": ["app"]})
