"""A whole deployment on loopback, driven only through the rmctl and rmagent commands.

Used by ``make demo``, the end-to-end tests and the benchmarks, so all three exercise
exactly what a user types.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
TRUST_DOMAIN = "example.test"


class StepFailed(RuntimeError):
    """A command exited non-zero where success was expected."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise StepFailed(f"timed out waiting for {what}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Deployment:
    """Homes for the controller (admin), one engineer, one auditor and one agent under ``root``.

    ``mode`` is the agent's (``rmagent enroll --mode``): "direct", "dial-out" or "both"."""

    root: Path
    controller_port: int = field(default_factory=free_port)
    enroll_port: int = field(default_factory=free_port)
    agent_port: int = field(default_factory=free_port)
    echo: bool = False
    mode: str = "direct"
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def controller_home(self) -> Path:
        return self.root / "controller"

    @property
    def engineer_home(self) -> Path:
        return self.root / "engineer"

    @property
    def auditor_home(self) -> Path:
        return self.root / "auditor"

    @property
    def agent_home(self) -> Path:
        return self.root / "agent"

    # -- running commands ---------------------------------------------------------------

    def run(self, program: str, home: Path, *args: str, check: bool = True,
            stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / program), "--home", str(home), *args]
        if self.echo:
            print(f"$ {program} {' '.join(_quote(a) for a in args)}", flush=True)
        done = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=timeout,
                              env=_env(), check=False)
        if self.echo and done.stdout:
            print(done.stdout.rstrip(), flush=True)
        if check and done.returncode != 0:
            raise StepFailed(f"{program} {' '.join(args)} exited {done.returncode}: "
                             f"{done.stderr.strip() or done.stdout.strip()}")
        return done

    def rmctl(self, *args: str, home: Path | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("rmctl", home or self.controller_home, *args, **kw)

    def engineer(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("rmctl", self.engineer_home, *args, **kw)

    def auditor(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("rmctl", self.auditor_home, *args, **kw)

    def rmagent(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("rmagent", self.agent_home, *args, **kw)

    def json(self, done: subprocess.CompletedProcess[str]) -> Any:
        return json.loads(done.stdout)

    # -- processes ----------------------------------------------------------------------

    def _spawn(self, program: str, home: Path, *args: str) -> subprocess.Popen[bytes]:
        log = open(home / f"{program}-serve.out", "ab")
        proc = subprocess.Popen([str(BIN / program), "--home", str(home), *args], stdout=log,
                                stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
        log.close()
        self.processes.append(proc)
        return proc

    def start_controller(self) -> subprocess.Popen[bytes]:
        proc = self._spawn("rmctl", self.controller_home, "serve")
        wait_until(lambda: port_open(self.controller_port) and port_open(self.enroll_port),
                   "the controller to listen")
        return proc

    def start_agent(self) -> subprocess.Popen[bytes]:
        mark = self.agent_log_size()
        proc = self._spawn("rmagent", self.agent_home, "run")
        wait_until(lambda: (self.mode == "dial-out" or port_open(self.agent_port))
                   and (self.agent_home / "rmagent.sock").exists(), "the agent to listen")
        if self.mode != "direct":
            self.wait_connected(mark)
        return proc

    def enable_shell(self, *, user: str, idle_timeout: float = 900.0,
                     gateway_port: int | None = None) -> int:
        """Turn interactive login on: ``gateway_listen`` in rmctl.toml and a ``[shell]`` table
        in agent.toml; restarts the controller and the agent. The gateway's port."""
        import tomllib

        import tomli_w

        port = gateway_port or free_port()
        self.stop()
        for path, section, values in (
                (self.controller_home / "rmctl.toml", "controller",
                 {"gateway_listen": f"127.0.0.1:{port}"}),
                (self.agent_home / "agent.toml", "shell",
                 {"user": user, "idle_timeout": idle_timeout})):
            data = tomllib.loads(path.read_text())
            data.setdefault(section, {}).update(values)
            path.write_text(tomli_w.dumps(data))
        self.start_controller()
        wait_until(lambda: port_open(port), "the SSH gateway to listen")
        self.start_agent()
        return port

    def agent_log_size(self) -> int:
        log = self.agent_home / "agent.log"
        return log.stat().st_size if log.exists() else 0

    def wait_connected(self, mark: int, timeout: float = 20.0) -> None:
        """Wait until the agent logs, after byte ``mark`` of its log, that it dialled in."""
        def connected() -> bool:
            log = self.agent_home / "agent.log"
            with log.open("rb") as f:
                f.seek(mark)
                return b'"dialout.connected"' in f.read()
        wait_until(connected, "the agent to connect to the controller", timeout)

    def stop(self, proc: subprocess.Popen[bytes] | None = None) -> None:
        for p in [proc] if proc else list(self.processes):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if p in self.processes:
                self.processes.remove(p)

    # -- the set-up a service company and its customer go through -----------------------

    def initialise(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.rmctl("init", "--trust-domain", TRUST_DOMAIN,
                   "--listen", f"127.0.0.1:{self.controller_port}",
                   "--enroll-listen", f"127.0.0.1:{self.enroll_port}")

    def token(self, *args: str) -> str:
        done = self.rmctl(*args, "--json")
        return str(self.json(done)["token"])

    def enroll_agent(self, agent_id: str = "web-1", customer: str = "acme") -> None:
        token = self.token("agent", "add", agent_id, "--customer", customer)
        self.rmagent("enroll", "--token", token, "--listen", f"127.0.0.1:{self.agent_port}",
                     "--mode", self.mode)
        self.rmagent("approver", "init", "--name", "carol")

    def enable_inspection(self, profile: str) -> None:
        """Add an ``[inspect]`` table (its TOML body) to the enrolled agent's agent.toml.

        Takes effect when the agent starts. Intervals under 30 s also need
        ``RMAINT_INSPECT_MIN_INTERVAL`` in the environment the agent is started with.
        """
        path = self.agent_home / "agent.toml"
        path.write_text(path.read_text(encoding="utf-8") + "\n[inspect]\n" + profile,
                        encoding="utf-8")

    def enable_data(self, sources: str) -> None:
        """Add data sources (the TOML text of ``[[data.sources]]`` tables) to the agent's
        agent.toml and restart the agent: the customer's own allowlist, read at start."""
        for proc in [p for p in self.processes
                     if isinstance(p.args, list) and str(BIN / "rmagent") in p.args]:
            self.stop(proc)
        path = self.agent_home / "agent.toml"
        path.write_text(path.read_text(encoding="utf-8") + "\n" + sources, encoding="utf-8")
        self.start_agent()

    def enable_changes(self, sections: str) -> None:
        """Add the customer's ``[params]``, ``[services]`` or ``[[devices]]`` tables (TOML
        text) to agent.toml and restart the agent, as :meth:`enable_data` does."""
        self.enable_data(sections)

    def login(self, role: str, name: str, home: Path) -> None:
        token = self.token(role, "add", name)
        self.run("rmctl", home, "login", "--token", token)

    def standard_setup(self) -> None:
        """Controller and agent running; customer acme with a contract; engineer alice; auditor bob."""
        self.initialise()
        self.start_controller()
        self.rmctl("customer", "add", "acme", "--name", "Acme Corp",
                   "--contract-start", "2026-01-01", "--contract-end", "2030-12-31")
        self.enroll_agent()
        self.start_agent()
        self.login("engineer", "alice", self.engineer_home)
        self.login("auditor", "bob", self.auditor_home)

    def open_case(self, title: str = "web-1 answers slowly") -> str:
        done = self.rmctl("case", "open", "--customer", "acme", "--title", title,
                          "--assign", "alice", "--json")
        return str(self.json(done)["case_id"])

    def grant_access(self, case_id: str, scopes: Sequence[str] = ("diag.read",),
                     duration: str = "2h",
                     reason: str = "customer reports slow responses") -> str:
        args = ["access", "request", "--case", case_id, "--agent", "web-1", "--for", duration,
                "--reason", reason, "--json"]
        for scope in scopes:
            args += ["--scope", scope]
        request_id = str(self.json(self.engineer(*args))["request_id"])
        self.rmagent("requests", "--json")
        done = self.rmagent("approve", request_id, "--yes", "--json")
        return str(self.json(done)["grant_id"])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RMAINT_HOME", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _quote(arg: str) -> str:
    return f'"{arg}"' if " " in arg else arg
