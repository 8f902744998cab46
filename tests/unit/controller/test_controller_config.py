"""Parsing the [controller] section: good values resolve, bad ones say what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.config import Address, ControllerConfig, load_config, parse_config
from controller.errors import ConfigError

HOME = Path("/srv/rmaint")


def parse(**section: Any) -> ControllerConfig:
    return parse_config(HOME, {"trust_domain": "example.test", **section})


def test_defaults() -> None:
    config = parse()
    assert (str(config.listen), str(config.enroll_listen)) == ("127.0.0.1:7443", "127.0.0.1:7444")
    assert config.advertise is None
    assert config.database_url == "sqlite:////srv/rmaint/controller.db"
    assert config.public_address(7443) == "127.0.0.1:7443"


def test_port_zero_and_bound_ports() -> None:
    config = parse(listen="127.0.0.1:0", enroll_listen="127.0.0.1:0")
    assert config.public_address(40001) == "127.0.0.1:40001"
    assert config.enroll_address(40002) == "127.0.0.1:40002"


def test_advertise_names_both_addresses() -> None:
    config = parse(listen="0.0.0.0:7443", enroll_listen="0.0.0.0:7444",
                   advertise="ctl.example.test:443")
    assert config.public_address(7443) == "ctl.example.test:443"
    assert config.enroll_address(7444) == "ctl.example.test:7444"


def test_ipv6_addresses() -> None:
    assert Address.parse("[::1]:7443") == Address("::1", 7443)
    assert str(Address("::1", 7443)) == "[::1]:7443"


def test_database_urls() -> None:
    assert parse(database_url="postgresql://u:pw@db/rm").database_url == \
        "postgresql+psycopg://u:pw@db/rm"
    assert parse(database_url="sqlite:///data/c.db").database_url == \
        "sqlite:////srv/rmaint/data/c.db"
    assert parse(database_url="postgresql://u:pw@db/rm").safe_database_url == \
        "postgresql+psycopg://u:***@db/rm"


@pytest.mark.parametrize(("section", "message"), [
    ({"trust_domain": ""}, "trust_domain is required"),
    ({"trust_domain": "Not A Domain"}, "invalid trust domain"),
    ({"trust_domain": 5}, "trust_domain must be a string"),
    ({"listen": "127.0.0.1"}, "listen must be host:port"),
    ({"listen": "127.0.0.1:70000"}, "port 0-65535"),
    ({"listen": "::1:7443"}, "brackets"),
    ({"listen": "[nope]:7443"}, "invalid IPv6"),
    ({"listen": "0.0.0.0:7443"}, "set advertise"),
    ({"enroll_listen": ":7444"}, "enroll_listen is a wildcard"),
    ({"advertise": "0.0.0.0:7443"}, "advertise must name a reachable"),
    ({"database_url": "mysql://x/y"}, "must be sqlite"),
    ({"database_url": "::not a url::"}, "not a database URL"),
    ({"database_url": "sqlite://"}, "needs a file path"),
    ({"lisen": "127.0.0.1:1"}, "unknown key in [controller]: lisen"),
])
def test_bad_values_are_named(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(**section)
    assert message in str(error.value)


def test_missing_file_says_to_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rmctl init"):
        load_config(tmp_path)


@pytest.mark.parametrize(("text", "message"), [
    ("[client]\nrole = 'admin'\n", "no [controller] section"),
    ("[controller\n", "cannot read"),
    ("[controller]\ntrust_domain = 'example.test'\nlisten = 'x'\n", "rmctl.toml: [controller]"),
])
def test_bad_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "rmctl.toml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path)
    assert message in str(error.value)
    assert str(tmp_path) in str(error.value)
