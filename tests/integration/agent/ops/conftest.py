"""The config and service operations over a real file, real processes and a real change
store, driven as the dispatcher would, with a fake clock for previews and consents."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

import permissions as p
from agent import params
from agent import servicectl as svc
from agent.change_consent import ChangeGate
from agent.changes import ChangeStore
from agent.context import OperationContext
from agent.param_ops import ParamOperations
from agent.service_ops import ServiceOperations
from agent.servicectl._process import _CHILDREN

APP_INI = """; the application
[server]
port = 8080
workers = 4
db_password = hunter2-planted-secret
[log]
level = info
"""
SLEEPER = "import time\nwhile True:\n    time.sleep(0.05)\n"
CTX = OperationContext(agent_id="web-1", grant_id="G-1", case_id="C-1", session_id="S-1",
                       seq=1, engineer="alice", engineer_key_id="sha256:" + "ab" * 32)


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Trust:
    keys: dict[str, p.PublicKey]

    def current(self) -> p.AgentTrust:
        return p.AgentTrust("web-1", self.keys)


@dataclass
class Ops:
    """A change store with the config and service operations of one customer policy."""

    home: Path
    clock: Clock = field(default_factory=Clock)
    approver: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)

    def __post_init__(self) -> None:
        self.app = self.home / "app.ini"
        self.app.write_text(APP_INI)
        self.check = self.home / "check.py"  # the validation: workers must stay below 64
        self.check.write_text(
            "import configparser, sys\nc = configparser.ConfigParser()\n"
            f"c.read({str(self.app)!r})\nw = int(c['server']['workers'])\n"
            "print('workers', w, 'db_password = hunter2-planted-secret')\n"
            "sys.exit(0 if w < 64 else 3)\n")
        self.store = ChangeStore(self.home / "changes.db")
        self.trust = Trust({p.key_id(self.approver.public_key()): self.approver.public_key()})
        gate = ChangeGate(self.store, self.trust, self.clock)
        self.params = ParamOperations(self.param_config(), params.Backups(self.home / "bk"),
                                      gate, self.clock)
        self.pidfile = self.home / "run" / "worker.pid"
        self.services_config = self.service_config()
        self.services = ServiceOperations(self.services_config, gate, self.clock)

    def param_config(self) -> params.ParamsConfig:
        return params.parse({"files": [{
            "name": "app", "path": str(self.app), "format": "ini",
            "keys": ["server.port", "server.workers", "log.level"],
            "validate": [sys.executable, str(self.check)], "validate_timeout_seconds": 10}]})

    def service_config(self) -> svc.ServicesConfig:
        script = self.home / "sleeper.py"
        script.write_text(SLEEPER)
        return svc.parse({"allow": [{
            "name": "worker", "backend": "process", "start": [sys.executable, str(script)],
            "pidfile": str(self.pidfile), "start_settle_seconds": 0.3,
            "verify_timeout_seconds": 10,
            "actions": ["status", "start", "stop", "restart", "reload"]}]})

    def run(self, operation: str, raw: dict[str, Any],
            ctx: OperationContext = CTX) -> dict[str, Any]:
        family, name = operation.split(".")
        ops = self.params if family == "config" else self.services
        runner = getattr(ops, f"prepare_{name}")(raw, ctx)
        result: dict[str, Any] = asyncio.run(runner())
        json.dumps(result)  # what the dispatcher sends must be JSON
        return result

    def consent(self, digest: str, *, ctx: OperationContext = CTX, seconds: int = 600,
                key: ed25519.Ed25519PrivateKey | None = None) -> None:
        context = p.ChangeContext(change_digest=digest, agent_id=ctx.agent_id,
                                  case_id=ctx.case_id, grant_id=ctx.grant_id,
                                  engineer_key_id=ctx.engineer_key_id)
        consent_id = f"K-{uuid.uuid4().hex[:12]}"
        envelope = p.consent_to_change(context, key or self.approver, consent_id=consent_id,
                                       now=int(self.clock()), seconds=seconds)
        self.store.add_consent(consent_id, digest, envelope, self.clock())


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Ops]:
    made = Ops(tmp_path)
    yield made
    made.store.close()
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is None:
            os.killpg(pid, signal.SIGKILL)
            child.wait()
        _CHILDREN.pop(pid, None)
