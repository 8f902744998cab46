"""Locks stop the SSH gateway: a login whose engineer key or agent is locked is refused
before the gateway dials or claims anything, and a locked or unenrolled agent offers no
reverse shell stream (real SQLite store; the SSH process and the
relay are stand-ins, since the refusal happens before either is used)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import asyncssh
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controller.errors import PermissionDenied
from controller.gateway.session import GatewaySession, Login, Refusal, ssh_key_id
from controller.services._common import Deps
from controller.services.agent_report import _may_offer_shell
from controller.store import Store, directory, migrate
from controller.store import locks as store_locks
from controller.store.records import AgentRecord, Customer, Principal
from permissions.locks import Lock

NOW = 10_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/c.db")
    migrate.upgrade(opened)
    yield opened
    opened.close()


def _login(store: Store) -> tuple[Login, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key = asyncssh.import_private_key(pem).convert_to_public()
    kid = ssh_key_id(key)
    store.write_sync(directory.save_principal, Principal("engineer", "alice", kid, 1.0))
    return Login(username="web-1+" + "0a" * 16, key=key, peer="127.0.0.1"), kid


def _session(store: Store) -> GatewaySession:
    relay = SimpleNamespace(dialin=None)  # no dial-out agents: the agent is unreachable
    deps = Deps(store=store, clock=lambda: NOW, trust_domain="td", authority=None,  # type: ignore[arg-type]
                relay=relay, controller_address="", enroll_address="")  # type: ignore[arg-type]
    return GatewaySession(deps, None)  # type: ignore[arg-type]


def _authorize(session: GatewaySession, login: Login) -> Refusal:
    process = SimpleNamespace(term_size=(80, 24, 0, 0), term_type="xterm")
    with pytest.raises(Refusal) as refused:
        asyncio.run(session._authorize(process, login))  # type: ignore[arg-type]
    return refused.value


@pytest.mark.parametrize("locked", ["engineer-key", "agent"])
def test_a_locked_login_is_refused_before_dialling(store: Store, locked: str) -> None:
    login, kid = _login(store)
    session = _session(store)
    assert _authorize(session, login).reason == "agent-unreachable"  # unlocked: goes on
    target = f"engineer-key:{kid}" if locked == "engineer-key" else "agent:web-1"
    store.write_sync(store_locks.add_lock, Lock("L-1", target, "incident", "root", NOW - 1))
    refusal = _authorize(session, login)
    assert refusal.reason == "locked" and "L-1" in refusal.detail


def test_an_expired_lock_no_longer_refuses(store: Store) -> None:
    login, kid = _login(store)
    store.write_sync(store_locks.add_lock, Lock("L-1", f"engineer-key:{kid}", "x", "root",
                                                NOW - 10, NOW - 1))
    assert _authorize(_session(store), login).reason == "agent-unreachable"


def test_only_an_enrolled_unlocked_agent_offers_a_shell_stream(store: Store) -> None:
    with pytest.raises(PermissionDenied, match="not enrolled"):
        store.read_sync(_may_offer_shell, "web-1", NOW)
    store.write_sync(directory.add_customer, Customer("acme", "Acme", dt.date(2020, 1, 1),
                                                      dt.date(2099, 1, 1), 1.0))
    store.write_sync(directory.save_agent, AgentRecord("web-1", "acme", "", b"", "", 1.0, None))
    store.read_sync(_may_offer_shell, "web-1", NOW)
    store.write_sync(store_locks.add_lock, Lock("L-2", "agent:web-1", "incident", "root", NOW))
    with pytest.raises(PermissionDenied, match="L-2"):
        store.read_sync(_may_offer_shell, "web-1", NOW)
