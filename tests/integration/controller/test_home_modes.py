"""A deployment's home keeps its secrets to its owner, even in a folder made beforehand."""

from __future__ import annotations

import stat
from pathlib import Path

from controller.setup import init_deployment


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_and_secrets_are_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "ctl"
    home.mkdir(mode=0o755)
    init_deployment(home, "example.test")
    assert mode(home) == 0o700
    for name in ("rmctl.toml", "ca.key", "controller.key", "admin.key"):
        assert mode(home / name) == 0o600, name
    assert "trust_domain" in (home / "rmctl.toml").read_text()
