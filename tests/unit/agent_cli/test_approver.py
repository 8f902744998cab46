"""`rmagent approver init/list`: a 0600 Ed25519 key here, exactly its public key pinned."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent.config import load

from .conftest import Invoke


def test_init_writes_0600_key_and_pins_its_public_key(rmagent: Invoke, home: Path) -> None:
    result = rmagent("approver", "init", "--name", "ops")
    assert result.exit_code == 0, result.output
    key_file = home / "approvers" / "ops.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    (pin,) = load(home).approvers
    assert (pin.name, pin.public_key, pin.key_id) == ("ops", public, p.key_id(key.public_key()))
    assert pin.key_id in result.stdout


def test_init_json_and_list(rmagent: Invoke) -> None:
    made = json.loads(rmagent("--json", "approver", "init").stdout)
    assert made["name"] == "default"
    listed = json.loads(rmagent("approver", "list", "--json").stdout)
    assert listed == {"approvers": [{"name": "default", "key_id": made["key_id"],
                                     "key_on_host": True}]}


def test_init_refuses_a_second_key_under_the_same_name(rmagent: Invoke, home: Path) -> None:
    assert rmagent("approver", "init", "--name", "ops").exit_code == 0
    before = (home / "approvers" / "ops.key").read_bytes()
    result = rmagent("approver", "init", "--name", "ops")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert (home / "approvers" / "ops.key").read_bytes() == before
    assert len(load(home).approvers) == 1


def test_init_refuses_a_bad_name(rmagent: Invoke, home: Path) -> None:
    result = rmagent("approver", "init", "--name", "Bad Name")
    assert result.exit_code == 1
    assert "invalid approver name" in result.stderr
    assert not (home / "approvers").exists() or not any((home / "approvers").iterdir())


def test_not_enrolled_home_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    result = CliRunner().invoke(app, ["--home", str(tmp_path / "nowhere"), "approver", "init"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "not enrolled" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
