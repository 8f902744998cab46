"""[inspect] in a real agent.toml: loaded, saved in normal form, faults named."""

from __future__ import annotations

import dataclasses

import pytest

from agent import config as agent_config
from agent.inspect.profile import InspectProfile
from tests.integration.agent.conftest import Deployment


def _append(deployment: Deployment, text: str) -> None:
    path = deployment.home / agent_config.CONFIG_NAME
    path.write_text(path.read_text() + text)


def test_a_profile_loads_and_survives_a_save(deployment: Deployment) -> None:
    _append(deployment, '\n[inspect]\nenabled = true\ninterval_seconds = 60\n'
                        'disk_percent = 90\n[inspect.mounts."/var"]\ninode_percent = 70\n')
    config = agent_config.load(deployment.home)
    assert config.inspect.enabled and config.inspect.mount("/var") == (90.0, 70.0)
    agent_config.save(deployment.home, config)
    assert agent_config.load(deployment.home) == config


def test_a_bad_profile_names_the_file_and_the_key(deployment: Deployment) -> None:
    _append(deployment, "\n[inspect]\nenabled = true\ninterval_seconds = 5\n")
    with pytest.raises(agent_config.ConfigInvalid, match=r"agent\.toml: inspect\.interval_"):
        agent_config.load(deployment.home)


def test_a_short_interval_needs_the_environment(deployment: Deployment,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _append(deployment, "\n[inspect]\nenabled = true\ninterval_seconds = 1\n")
    with pytest.raises(agent_config.ConfigInvalid):
        agent_config.load(deployment.home)
    monkeypatch.setenv("RMAINT_INSPECT_MIN_INTERVAL", "1")
    assert agent_config.load(deployment.home).inspect.interval_seconds == 1.0


def test_saving_refuses_a_profile_not_in_normal_form(deployment: Deployment) -> None:
    config = agent_config.load(deployment.home)
    odd = dataclasses.replace(config, inspect=InspectProfile(enabled=True, services=("a", "a")))
    with pytest.raises(agent_config.ConfigInvalid, match="normal form"):
        agent_config.save(deployment.home, odd)
