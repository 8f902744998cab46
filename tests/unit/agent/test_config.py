"""agent.toml: strict reading, atomic writing, pinning approvers."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent import config as c


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    c.save(home, c.AgentConfig(id="web-1", trust_domain="example.test",
                               controller="127.0.0.1:7443"))
    return home


def test_round_trip_with_defaults(tmp_path: Path) -> None:
    home = _home(tmp_path)
    config = c.load(home)
    assert config == c.AgentConfig(id="web-1", trust_domain="example.test",
                                   listen="127.0.0.1:7501", controller="127.0.0.1:7443",
                                   socket="rmagent.sock", log_path="agent-log.db")
    assert not list(home.glob(".*.tmp"))


def test_pin_approver_adds_and_refuses_duplicates(tmp_path: Path) -> None:
    home = _home(tmp_path)
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    pin = c.pin_approver(home, "alice", key)
    assert pin.key_id == p.key_id(key) and pin.key() == key
    assert c.load(home).approvers == (pin,)
    assert c.load(home).approver_keys() == {pin.key_id: key}
    with pytest.raises(c.DuplicateApprover, match="named 'alice'"):
        c.pin_approver(home, "alice", ed25519.Ed25519PrivateKey.generate().public_key())
    with pytest.raises(c.DuplicateApprover, match="already pinned as 'alice'"):
        c.pin_approver(home, "bob", p.public_key_bytes(key))
    c.pin_approver(home, "bob", ed25519.Ed25519PrivateKey.generate().public_key())
    assert [a.name for a in c.load(home).approvers] == ["alice", "bob"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(c.ConfigMissing, match="not enrolled"):
        c.load(tmp_path)


@pytest.mark.parametrize(("text", "message"), [
    ("[agent\n", "not valid TOML"),
    ("[log]\npath='x'\n", r"\[agent\] section is missing"),
    ("[agent]\nid='web-1'\n", "trust_domain is missing"),
    ("[agent]\nid='Web 1'\ntrust_domain='example.test'\n", "invalid agent id"),
    ("[agent]\nid='web-1'\ntrust_domain='example.test'\nlisten='nowhere'\n", "host:port"),
    ("[agent]\nid='web-1'\ntrust_domain='example.test'\ncolour='red'\n", "unknown key"),
    ("[agent]\nid='web-1'\ntrust_domain='example.test'\n[extra]\n", "unknown section"),
    ("[agent]\nid='web-1'\ntrust_domain='example.test'\n[[approvers]]\nname='a'\n"
     "key_id='sha256:00'\npublic_key='AAAA'\n", "32-byte"),
])
def test_bad_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "agent.toml").write_text(text)
    with pytest.raises(c.ConfigInvalid, match=message):
        c.load(tmp_path)


def test_a_key_id_that_does_not_match_its_key_is_refused(tmp_path: Path) -> None:
    raw = p.public_key_bytes(ed25519.Ed25519PrivateKey.generate().public_key())
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    (tmp_path / "agent.toml").write_text(
        "[agent]\nid='web-1'\ntrust_domain='example.test'\n[[approvers]]\nname='a'\n"
        f"key_id='{p.key_id(other)}'\npublic_key='{base64.b64encode(raw).decode()}'\n")
    with pytest.raises(c.ConfigInvalid, match="key_id does not match"):
        c.load(tmp_path)


def test_paths(tmp_path: Path) -> None:
    paths = c.AgentPaths(tmp_path)
    assert (paths.key, paths.cert, paths.ca, paths.state, paths.log, paths.socket) == (
        tmp_path / "agent.key", tmp_path / "agent.crt", tmp_path / "ca.crt",
        tmp_path / "state.db", tmp_path / "agent-log.db", tmp_path / "rmagent.sock")
    assert paths.approver_key("alice") == tmp_path / "approvers" / "alice.key"
    custom = c.AgentPaths.of(tmp_path, c.AgentConfig(id="a", trust_domain="t.test",
                                                     socket="/run/rm.sock", log_path="l.db"))
    assert (custom.socket, custom.log) == (Path("/run/rm.sock"), tmp_path / "l.db")
