"""device.exec against a real SSH server on loopback: pinned host keys, allowlisted
commands, credentials that stay on the agent, redacted output."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncssh
import pytest

from agent.devices import operations, policy
from agent.errors import InvalidParams, OperationFailed

from .conftest import PASSWORD, SECRET_IN_OUTPUT, USER, FakeSwitch

COMMANDS = ["show version", "show interfaces {word}", "show flood", "show fail", "show hang"]


def _config(switch: FakeSwitch, **overrides: Any) -> policy.DevicesConfig:
    entry: dict[str, Any] = {"name": "core-switch", "host": "127.0.0.1", "port": switch.port,
                             "user": USER, "password": PASSWORD, "host_key": switch.host_key,
                             "commands": COMMANDS, "timeout": 5}
    entry.update(overrides)
    return policy.parse([{k: v for k, v in entry.items() if v is not None}])


async def _run(config: policy.DevicesConfig, command: str) -> dict[str, Any]:
    return await operations.execute(operations.parse_exec(
        {"device": "core-switch", "command": command}, config))


async def test_runs_an_allowlisted_command_and_redacts_its_output(switch: FakeSwitch) -> None:
    result = await _run(_config(switch), "show version")
    assert result["exit_status"] == 0
    assert "Switch OS 9.3" in result["stdout"]
    assert SECRET_IN_OUTPUT not in json.dumps(result)
    assert result["redactions"] == 1
    assert switch.commands == ["show version"]


async def test_a_placeholder_takes_one_safe_word(switch: FakeSwitch) -> None:
    result = await _run(_config(switch), "show interfaces Gi0/1")
    assert result["stdout"] == "interface Gi0/1 is up\n"
    for hostile in ("show interfaces Gi0/1; reload", "show interfaces Gi0/1 extra",
                    "show interfaces $(reboot)", "show interfaces 'x'", "show  interfaces x",
                    "reload", "show interfaces -rf", "show interfaces \x00"):
        with pytest.raises(InvalidParams, match=r"not allowlisted|without line breaks"):
            operations.parse_exec({"device": "core-switch", "command": hostile}, _config(switch))
    assert switch.commands == ["show interfaces Gi0/1"]


async def test_exit_status_and_stderr_come_back(switch: FakeSwitch) -> None:
    result = await _run(_config(switch), "show fail")
    assert (result["exit_status"], result["stderr"]) == (3, "% Invalid input\n")


async def test_large_output_is_cut_and_says_so(switch: FakeSwitch) -> None:
    result = await _run(_config(switch), "show flood")
    assert result["stdout_bytes"] == 4100
    assert not result["truncated"]
    from agent.devices import ssh
    ran = await asyncio.to_thread(ssh.run, _config(switch).devices[0], ("show", "flood"),
                                  limit=1000)
    assert (len(ran.stdout), ran.stdout_bytes) == (1000, 4100)


async def test_key_file_authentication(switch: FakeSwitch) -> None:
    config = _config(switch, password=None, key_file=str(switch.client_key_path))
    assert (await _run(config, "show version"))["exit_status"] == 0


async def test_wrong_password_fails_without_echoing_it(switch: FakeSwitch) -> None:
    with pytest.raises(OperationFailed, match="authentication failed") as caught:
        await _run(_config(switch, password=PASSWORD[::-1]), "show version")
    assert PASSWORD[::-1] not in str(caught.value)
    assert switch.commands == []


async def test_an_unknown_host_key_is_refused_and_nothing_runs(switch: FakeSwitch) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    config = _config(switch, host_key=" ".join(other.split()[:2]))
    with pytest.raises(OperationFailed, match="host key does not match"):
        await _run(config, "show version")
    assert switch.commands == []


async def test_a_host_key_of_another_type_is_refused(switch: FakeSwitch) -> None:
    other = asyncssh.generate_private_key("ecdsa-sha2-nistp256").export_public_key("openssh")
    config = _config(switch, host_key=" ".join(other.decode().split()[:2]))
    with pytest.raises(OperationFailed, match="nothing was run"):
        await _run(config, "show version")
    assert switch.commands == []


async def test_a_hanging_command_times_out(switch: FakeSwitch) -> None:
    with pytest.raises(OperationFailed, match="did not finish"):
        await _run(_config(switch, timeout=1), "show hang")


async def test_an_unreachable_device_fails_clearly(switch: FakeSwitch) -> None:
    config = _config(switch, port=1, timeout=2)
    with pytest.raises(OperationFailed, match="cannot connect"):
        await _run(config, "show version")


async def test_list_names_devices_and_commands_only(switch: FakeSwitch) -> None:
    config = _config(switch)
    listed = await operations.list_devices(operations.parse_list({}, config))
    text = json.dumps(listed)
    assert listed["devices"][0]["commands"] == COMMANDS
    for hidden in (PASSWORD, "127.0.0.1", USER, switch.host_key.split()[1]):
        assert hidden not in text
    assert PASSWORD not in repr(config)
