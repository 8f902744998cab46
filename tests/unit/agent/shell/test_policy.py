"""The [shell] table of agent.toml."""

from __future__ import annotations

from typing import Any

import pytest

from agent.shell.errors import ShellPolicyInvalid
from agent.shell.policy import DEFAULT_IDLE, DEFAULT_SHELL, ShellPolicy, parse, to_toml


def test_no_table_means_no_shell() -> None:
    assert parse({}) == ShellPolicy()
    assert not parse({}).enabled
    assert to_toml(ShellPolicy()) == {}


def test_defaults_and_round_trip() -> None:
    policy = parse({"user": "maint"})
    assert policy == ShellPolicy("maint", DEFAULT_SHELL, DEFAULT_IDLE, policy.max_duration)
    assert policy.enabled
    assert parse(to_toml(policy)) == policy


@pytest.mark.parametrize(("table", "message"), [
    ({"shell": "/bin/sh"}, "user is required"),
    ({"user": ""}, "user is required"),
    ({"user": "-oops"}, "user is required"),
    ({"user": "a b"}, "user is required"),
    ({"user": "maint", "shell": "bash"}, "absolute path"),
    ({"user": "maint", "idle_timeout": 0}, "idle_timeout"),
    ({"user": "maint", "idle_timeout": True}, "idle_timeout"),
    ({"user": "maint", "max_duration": "1h"}, "max_duration"),
    ({"user": "maint", "colour": "blue"}, "unknown key in [shell]: colour"),
    ([], "must be a table"),
])
def test_bad_tables_are_refused_with_a_message(table: Any, message: str) -> None:
    with pytest.raises(ShellPolicyInvalid, match=message.replace("[", r"\[")):
        parse(table)
