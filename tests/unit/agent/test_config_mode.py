"""agent.toml's [agent] mode, and enrolling in dial-out mode (no address is offered)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.config import AgentConfig, ConfigInvalid, load, save
from agent.enrollment import EnrollmentError, enroll_home
from pki.enroll import Enrolled
from pki.identity import Identity
from pki.token import JoinToken

BASE = AgentConfig(id="web-1", trust_domain="example.test", controller="127.0.0.1:7443")


def test_the_default_mode_is_direct_and_is_not_written(tmp_path: Path) -> None:
    save(tmp_path, BASE)
    assert "mode" not in (tmp_path / "agent.toml").read_text()
    config = load(tmp_path)
    assert (config.mode, config.serves_direct, config.dials_out) == ("direct", True, False)


@pytest.mark.parametrize(("mode", "direct", "dials"), [("dial-out", False, True),
                                                       ("both", True, True)])
def test_dial_out_modes_round_trip(tmp_path: Path, mode: str, direct: bool, dials: bool) -> None:
    save(tmp_path, replace(BASE, mode=mode))
    config = load(tmp_path)
    assert (config.mode, config.serves_direct, config.dials_out) == (mode, direct, dials)


def test_an_unknown_mode_is_refused_with_the_choices(tmp_path: Path) -> None:
    save(tmp_path, BASE)
    path = tmp_path / "agent.toml"
    path.write_text(path.read_text().replace('[agent]\n', '[agent]\nmode = "inbound"\n'))
    with pytest.raises(ConfigInvalid, match=r"agent\.mode must be one of direct, dial-out, both"):
        load(tmp_path)


def test_dialling_out_needs_a_controller_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match=r"needs agent\.controller"):
        save(tmp_path, replace(BASE, controller="", mode="dial-out"))
    assert not (tmp_path / "agent.toml").exists()


def _recording(offered: list[str]):  # type: ignore[no-untyped-def]
    async def enroller(token: JoinToken, key: ec.EllipticCurvePrivateKey,
                       address: str) -> Enrolled:
        offered.append(address)
        return Enrolled(Identity("example.test", "agent", "web-1"), b"CERT", b"CA",
                        "127.0.0.1:7443")
    return enroller


@pytest.mark.parametrize(("mode", "offered"), [("dial-out", ""), ("both", "127.0.0.1:7501"),
                                               ("direct", "127.0.0.1:7501")])
def test_enrolling_offers_an_address_only_when_the_agent_listens(
        tmp_path: Path, mode: str, offered: str) -> None:
    seen: list[str] = []
    token = JoinToken("127.0.0.1:9", "sha256:00", "example.test", "secret").encode()
    result = asyncio.run(enroll_home(tmp_path, token, listen="127.0.0.1:7501", mode=mode,
                                     enroller=_recording(seen)))
    assert seen == [offered]
    assert result.mode == mode and load(tmp_path).mode == mode


def test_an_unknown_mode_is_refused_before_the_token_is_spent(tmp_path: Path) -> None:
    seen: list[str] = []
    token = JoinToken("127.0.0.1:9", "sha256:00", "example.test", "secret").encode()
    with pytest.raises(EnrollmentError, match="mode must be one of"):
        asyncio.run(enroll_home(tmp_path, token, listen="127.0.0.1:7501", mode="sideways",
                                enroller=_recording(seen)))
    assert seen == [] and not (tmp_path / "agent.toml").exists()
