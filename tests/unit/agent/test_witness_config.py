"""The [witness] section of agent.toml: how often the logs are witnessed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import config as c
from agent.witness_config import WitnessConfig

_AGENT = "[agent]\nid='web-1'\ntrust_domain='example.test'\n"


def _load(tmp_path: Path, text: str) -> c.AgentConfig:
    (tmp_path / c.CONFIG_NAME).write_text(_AGENT + text)
    return c.load(tmp_path)


def test_the_interval_defaults_to_a_minute(tmp_path: Path) -> None:
    assert _load(tmp_path, "").witness == WitnessConfig(interval_seconds=60)
    assert _load(tmp_path, "[witness]\n").witness.interval_seconds == 60


@pytest.mark.parametrize("seconds", [1, 45, 3600])
def test_an_interval_in_range_is_kept_and_written_back(tmp_path: Path, seconds: int) -> None:
    config = _load(tmp_path, f"[witness]\ninterval_seconds = {seconds}\n")
    assert config.witness.interval_seconds == seconds
    c.save(tmp_path, config)
    assert c.load(tmp_path) == config
    written = (tmp_path / c.CONFIG_NAME).read_text()
    assert ("[witness]" in written) == (seconds != 10)


@pytest.mark.parametrize(("text", "message"), [
    ("interval_seconds = 0\n", "from 1 to 3600"),
    ("interval_seconds = 3601\n", "from 1 to 3600"),
    ("interval_seconds = '10'\n", "must be an integer"),
    ("interval_seconds = true\n", "must be an integer"),
    ("interval_seconds = 2.5\n", "must be an integer"),
    ("every = 10\n", r"unknown key in \[witness\]: every"),
])
def test_a_bad_interval_is_refused_naming_the_key(tmp_path: Path, text: str,
                                                  message: str) -> None:
    with pytest.raises(c.ConfigInvalid, match=message):
        _load(tmp_path, "[witness]\n" + text)


def test_witness_must_be_a_table(tmp_path: Path) -> None:
    (tmp_path / c.CONFIG_NAME).write_text("witness = 10\n" + _AGENT)
    with pytest.raises(c.ConfigInvalid, match=r"\[witness\] must be a table"):
        c.load(tmp_path)
