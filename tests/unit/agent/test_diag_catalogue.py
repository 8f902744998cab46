"""The diagnostics catalogue: strict parameters, allowlists bound in, scopes enforced."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.catalogue import CATALOGUE, build_catalogue
from agent.diag.policy import DiagConfig
from agent.errors import InvalidParams, Refused
from tests.unit.agent.conftest import RigFactory, World

DIAG = DiagConfig(log_files=("/var/log/app.log",), journald_units=("nginx.service",),
                  file_roots=("/srv/app",), connect_allow=("db.internal:5432", "*.example.com:443"))
ALLOWED = build_catalogue(DIAG)

VALID: list[tuple[str, dict[str, Any]]] = [
    ("diag.cpu", {}), ("diag.cpu", {"interval": 0.1}), ("diag.cpu", {"interval": 5}),
    ("diag.memory", {}), ("diag.network", {}), ("diag.services", {"failed_only": True}),
    ("diag.processes", {"name": "nginx", "user": "www-data", "min_cpu_percent": 150,
                        "min_memory_percent": 1.5, "by": "memory", "limit": 5, "interval": 0}),
    ("diag.process", {"pid": 1}), ("diag.clock", {}), ("diag.clock", {"controller_time": 1.7e9}),
    ("diag.connect", {"check": "tcp", "host": "db.internal", "port": 5432, "timeout": 0.5}),
    ("diag.connect", {"check": "tcp", "host": "DB.Internal.", "port": 5432}),
    ("diag.connect", {"check": "dns", "name": "api.example.com"}),
    ("diag.connect", {"check": "dns", "name": "db.internal"}),
    ("diag.connect", {"check": "http", "url": "https://a.b.example.com/health?x=1"}),
    ("diag.connect", {"check": "http", "url": "http://db.internal:5432/", "verify": False}),
    ("diag.connect", {"check": "tls", "host": "www.example.com", "port": 443,
                      "server_name": "other.example.com"}),
    ("logs.tail", {"path": "/var/log/app.log"}), ("logs.tail", {"unit": "nginx.service",
                                                               "lines": 1000}),
    ("logs.tail", {"path": "/var/log//app.log"}),  # the same file, written differently
    ("logs.search", {"path": "/var/log/app.log", "pattern": "a(b|c)", "regex": True,
                     "ignore_case": True, "limit": 1000, "scan_bytes": 1 << 20}),
    ("logs.search", {"unit": "nginx.service", "pattern": "(a+)+"}),  # a fixed string
    ("files.stat", {"path": "/srv/app"}), ("files.hash", {"path": "/srv/app/conf/x.toml"}),
]

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("diag.cpu", {"interval": 0}, "interval"), ("diag.cpu", {"interval": 6}, "interval"),
    ("diag.cpu", {"interval": True}, "interval"), ("diag.cpu", {"percpu": 1}, "unknown"),
    ("diag.cpu", {"interval": 10**400}, "interval"), ("diag.cpu", {"interval": float("nan")},
                                                      "interval"),
    ("diag.clock", {"controller_time": -10**400}, "controller_time"),
    ("diag.memory", {"x": 1}, "takes no parameters"),
    ("diag.services", {"failed_only": "yes"}, "failed_only"),
    ("diag.processes", {"name": ""}, "name"), ("diag.processes", {"name": "a\nb"}, "name"),
    ("diag.processes", {"user": 5}, "user"), ("diag.processes", {"min_cpu_percent": -1}, "min_cpu"),
    ("diag.processes", {"min_memory_percent": 101}, "min_memory"),
    ("diag.process", {}, "pid"), ("diag.process", {"pid": 0}, "pid"),
    ("diag.process", {"pid": "1"}, "pid"), ("diag.process", {"pid": True}, "pid"),
    ("diag.process", {"pid": 2**31}, "pid"),
    ("diag.clock", {"controller_time": "now"}, "controller_time"),
    ("diag.clock", {"controller_time": 1e12}, "controller_time"),
    ("diag.clock", {"controller_time": False}, "controller_time"),
    ("diag.connect", {}, "check"), ("diag.connect", {"check": "icmp"}, "check"),
    ("diag.connect", {"check": ["tcp"]}, "check"),
    ("diag.connect", {"check": "tls", "host": "www.example.com", "port": 443,
                      "server_name": "a b"}, "server_name"),
    ("diag.processes", {"by": ["cpu"]}, "by"),
    ("diag.connect", {"check": "tcp", "host": "db.internal", "port": 5433}, "not allowed"),
    ("diag.connect", {"check": "tcp", "host": "example.com", "port": 443}, "not allowed"),
    ("diag.connect", {"check": "tcp", "host": "evil.com", "port": 443}, "not allowed"),
    ("diag.connect", {"check": "tcp", "host": "a.example.com.evil.com", "port": 443},
     "not allowed"),
    ("diag.connect", {"check": "tcp", "host": "db.internal", "port": 0}, "port"),
    ("diag.connect", {"check": "tcp", "host": "db internal", "port": 5432}, "host"),
    ("diag.connect", {"check": "tcp", "host": "db.internal", "port": 5432, "url": "x"},
     "unknown"),
    ("diag.connect", {"check": "tcp", "host": "db.internal", "port": 5432, "timeout": 11},
     "timeout"),
    ("diag.connect", {"check": "dns", "name": "evil.com"}, "not allowed"),
    ("diag.connect", {"check": "http", "url": "ftp://db.internal:5432/"}, "http"),
    ("diag.connect", {"check": "http", "url": "http://u:pw@db.internal:5432/"}, "credentials"),
    ("diag.connect", {"check": "http", "url": "https://db.internal/"}, "not allowed"),
    ("diag.connect", {"check": "http", "url": "http://[::1"}, "valid URL"),
    ("logs.tail", {}, "exactly one of path or unit"),
    ("logs.tail", {"path": "/var/log/app.log", "unit": "nginx.service"}, "exactly one"),
    ("logs.tail", {"path": "/var/log/other.log"}, "log_files"),
    ("logs.tail", {"path": "/var/log/../log/app.log"}, "'..'"),
    ("logs.tail", {"path": "app.log"}, "log_files"),
    ("logs.tail", {"unit": "sshd.service"}, "journald_units"),
    ("logs.tail", {"path": "/var/log/app.log", "lines": 1001}, "lines"),
    ("logs.tail", {"path": "/var/log/app.log", "lines": 0}, "lines"),
    ("logs.search", {"path": "/var/log/app.log"}, "pattern"),
    ("logs.search", {"path": "/var/log/app.log", "pattern": "x" * 201}, "pattern"),
    ("logs.search", {"path": "/var/log/app.log", "pattern": "(a+)+", "regex": True},
     "repeated group"),
    ("logs.search", {"path": "/var/log/app.log", "pattern": r"(a)\1", "regex": True},
     "backreference"),
    ("logs.search", {"path": "/var/log/app.log", "pattern": "(?<=a)b", "regex": True},
     "lookahead"),
    ("logs.search", {"path": "/var/log/app.log", "pattern": "(", "regex": True}, "valid"),
    ("logs.search", {"unit": "nginx.service", "pattern": "x", "scan_bytes": 1 << 20},
     "files only"),
    ("logs.search", {"path": "/var/log/app.log", "pattern": "x", "limit": 1001}, "limit"),
    ("files.stat", {}, "path"), ("files.stat", {"path": "srv/app/x"}, "absolute"),
    ("files.stat", {"path": "/srv/app/../etc/passwd"}, "'..'"),
    ("files.stat", {"path": "/srv/application"}, "file_roots"),
    ("files.hash", {"path": "/etc/shadow"}, "file_roots"),
    ("files.hash", {"path": "/srv/app/x\x00y"}, "path"),
]


@pytest.mark.parametrize(("name", "params"), VALID)
def test_valid_parameters_give_a_runner(name: str, params: dict[str, Any]) -> None:
    assert callable(ALLOWED[name].prepare(params))


@pytest.mark.parametrize(("name", "params", "message"), INVALID)
def test_invalid_parameters_are_refused_with_a_clear_message(
        name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParams, match=rf"^{name.replace('.', '[.]')}: .*{message}"):
        ALLOWED[name].prepare(params)


@pytest.mark.parametrize(("name", "params"), [
    ("logs.tail", {"path": "/var/log/app.log"}), ("logs.tail", {"unit": "nginx.service"}),
    ("logs.search", {"path": "/var/log/app.log", "pattern": "x"}),
    ("files.stat", {"path": "/srv/app/x"}), ("files.hash", {"path": "/"}),
    ("diag.connect", {"check": "tcp", "host": "127.0.0.1", "port": 22}),
    ("diag.connect", {"check": "tcp", "host": "localhost", "port": 22}),
    ("diag.connect", {"check": "dns", "name": "localhost"}),
])
def test_without_a_diag_section_every_target_is_refused(name: str,
                                                        params: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams, match=r"allowlisted|not allowed"):
        CATALOGUE[name].prepare(params)


def _other_scopes(scope: str) -> tuple[str, ...]:
    return tuple(s for s in ("diag.read", "diag.logs", "diag.files", "data.read") if s != scope)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
async def test_every_operation_is_refused_without_its_scope(make_rig: RigFactory,
                                                            name: str) -> None:
    scope = CATALOGUE[name].scope
    rig = make_rig(world=World(scopes=_other_scopes(scope)), extra=ALLOWED)
    params = dict(next((p for n, p in VALID if n == name), {}))
    with pytest.raises(Refused) as refused:
        await rig.dispatcher.execute(rig.world.op(operation=name, params=params))
    assert refused.value.reason == "scope-not-granted"
    [entry] = rig.log.entries()
    assert (entry.kind, entry.operation, entry.outcome, entry.reason) == \
        ("attempt", name, "denied", "scope-not-granted")
    assert scope in entry.detail


@pytest.mark.parametrize(("scope", "name", "params"), [
    ("diag.logs", "logs.tail", {"path": "/var/log/secret.log"}),
    ("diag.files", "files.hash", {"path": "/etc/shadow"}),
    ("diag.read", "diag.connect", {"check": "tcp", "host": "evil.com", "port": 443}),
])
async def test_a_target_outside_the_allowlist_is_recorded_as_invalid(
        make_rig: RigFactory, scope: str, name: str, params: dict[str, Any]) -> None:
    rig = make_rig(world=World(scopes=(scope,)), extra=ALLOWED)
    with pytest.raises(InvalidParams):
        await rig.dispatcher.execute(rig.world.op(operation=name, params=params))
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == \
        [("attempt", "allowed"), ("result", "invalid")]


async def test_a_granted_operation_runs_through_the_dispatcher(make_rig: RigFactory) -> None:
    rig = make_rig(world=World(scopes=("diag.read",)), extra=ALLOWED)
    done = await rig.dispatcher.execute(rig.world.op(operation="diag.memory"))
    assert b'"total_bytes"' in done.result_json
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == \
        [("attempt", "allowed"), ("result", "ok")]


_KEYS = ["path", "unit", "pattern", "regex", "lines", "limit", "check", "host", "port", "name",
         "url", "pid", "interval", "by", "user", "timeout", "controller_time", "failed_only",
         "scan_bytes", "verify", "server_name", "ignore_case", "min_cpu_percent", "other"]
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["tcp", "dns", "http", "tls", "/srv/app/x", "/var/log/app.log", "cpu",
                       "db.internal", "nginx.service", "https://a.example.com/"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                   max_size=3),
    max_leaves=5)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(ALLOWED)), st.dictionaries(st.sampled_from(_KEYS), _VALUES,
                                                         max_size=4))
def test_any_json_parameters_give_a_runner_or_invalid_params(name: str,
                                                             params: dict[str, Any]) -> None:
    try:
        runner = ALLOWED[name].prepare(params)
    except InvalidParams:
        return
    assert callable(runner)
