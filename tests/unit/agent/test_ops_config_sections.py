"""agent.toml's [params], [services] and [[devices]]: read, checked, written back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent import config as c
from agent import params
from agent import servicectl as svc
from agent.devices import policy as devices

HOST_KEY = "ssh-ed25519 " + "AAAAC3NzaC1lZDI1NTE5AAAAIB" + "A" * 42 + "="
BASE = '[agent]\nid = "web-1"\ntrust_domain = "example.test"\n'
SECTIONS = """
[[params.files]]
name = "app"
path = "/etc/app/app.ini"
format = "ini"
keys = ["server.port"]

[[services.allow]]
name = "web"
backend = "systemd"
actions = ["status", "reload"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / c.CONFIG_NAME).write_text(text)
    return home


def test_sections_are_read_and_written_back(tmp_path: Path) -> None:
    home = _write(tmp_path, BASE + SECTIONS)
    loaded = c.load(home)
    assert loaded.params.file("app").keys == ("server.port",)
    assert loaded.services.rule("web").actions == ("status", "reload")
    assert loaded.devices == devices.DevicesConfig()
    c.save(home, loaded)
    assert c.load(home) == loaded
    written = (home / c.CONFIG_NAME).read_text()
    assert "[[params.files]]" in written and "[[services.allow]]" in written
    assert "devices" not in written  # empty sections are left out


def test_absent_sections_are_empty(tmp_path: Path) -> None:
    loaded = c.load(_write(tmp_path, BASE))
    assert loaded.params == params.ParamsConfig() and loaded.services == svc.ServicesConfig()


@pytest.mark.parametrize(("text", "message"), [
    ("params = 3\n", r"\[params\] must be a table"),
    ("devices = {}\n", r"\[devices\] must be an array of tables"),
    ('[services]\nallow = [{name = "web", backend = "upstart", actions = ["status"]}]\n',
     "backend"),
    ('[params]\nfiles = [{name = "app", path = "relative.ini", format = "ini", '
     'keys = ["a"]}]\n', "path"),
    ('[[devices]]\nname = "sw"\nhost = "10.0.0.2"\nuser = "u"\npassword = "p"\n'
     'commands = ["show version"]\n', "host_key"),
])
def test_faults_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(c.ConfigInvalid, match=message):
        # A bare key must come before [agent]; a table may come after it.
        c.load(_write(tmp_path, BASE + text if text.startswith("[") else text + BASE))


def test_a_config_not_in_normal_form_is_refused(tmp_path: Path) -> None:
    home = _write(tmp_path, BASE + SECTIONS)
    loaded = c.load(home)
    rule = replace(loaded.services.allow[0], actions=("reload", "status", "reload"))
    with pytest.raises(c.ConfigInvalid, match=r"\[services\] entries must be written in normal form"):
        c.save(home, replace(loaded, services=svc.ServicesConfig((rule,))))
