"""The diagnostics commands: parameters as the agent's catalogue reads them, results as the
agent shapes them (see agent/diag), readable tables, and --json as the agent sent it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from controller.cli import app

from .conftest import FakeAgent, FakeChannel, Home
from .test_engineer_commands import open_session_handler, rmctl, signed_operations

NOW = time.time()
GIB = 2**30

CPU = {
    "interval_seconds": 0.5, "logical_count": 4, "physical_count": 2, "percent": 37.5,
    "per_core_percent": [80.0, 20.0, 30.0, 20.0],
    "times_percent": {"user_percent": 30.0, "system_percent": 7.5, "idle_percent": 60.0,
                      "iowait_percent": 2.5, "nice_percent": 0.0},
    "times": {"user_seconds": 1234.5, "system_seconds": 321.0, "idle_seconds": 99999.0},
    "load_average_1m": 1.5, "load_average_5m": 0.75, "load_average_15m": 0.5,
    "frequency": {"current_mhz": 2400.0, "min_mhz": 800.0, "max_mhz": 3600.0},
    "per_core_frequency_mhz": [2400.0, 2300.0, 2200.0, 2100.0],
    "stats": {"context_switches": 123456, "interrupts": 65432, "soft_interrupts": 111,
              "syscalls": 0},
}
MEMORY = {
    "memory": {"total_bytes": 16 * GIB, "available_bytes": 6 * GIB, "used_bytes": 9 * GIB,
               "free_bytes": 2 * GIB, "buffers_bytes": 2**28, "cached_bytes": 4 * GIB,
               "shared_bytes": 2**27, "percent": 62.5},
    "swap": {"total_bytes": 2 * GIB, "used_bytes": GIB // 2, "free_bytes": 3 * GIB // 2,
             "percent": 25.0, "swapped_in_bytes": 2**20, "swapped_out_bytes": 2**21},
}
DISKS = {
    "filesystems": [
        {"device": "/dev/sda1", "mountpoint": "/", "fstype": "ext4",
         "options": "rw,relatime", "total_bytes": 100 * GIB, "used_bytes": 93 * GIB,
         "free_bytes": 7 * GIB, "percent": 93.0, "inodes_total": 6_553_600,
         "inodes_used": 655_360, "inodes_free": 5_898_240, "inodes_percent": 10.0},
        {"device": "//nas/share", "mountpoint": "/mnt/share", "fstype": "cifs",
         "options": "rw,username=[REDACTED]", "total_bytes": 2 * 2**40,
         "used_bytes": 2**40, "free_bytes": 2**40, "percent": 50.0, "inodes_total": 0,
         "inodes_used": 0, "inodes_free": 0, "inodes_percent": None}],
    "filesystems_truncated": False,
    "io_counters": [{"disk": "sda", "reads": 1000, "writes": 2000, "read_bytes": 5 * GIB,
                     "written_bytes": 3 * GIB, "read_time_seconds": 12.5,
                     "write_time_seconds": 30.25, "busy_time_seconds": 7200.0}],
    "redactions": 1,
}
PROCESSES = {
    "by": "memory", "interval_seconds": 0.0, "total_processes": 245, "matched_processes": 245,
    "processes": [
        {"pid": 812, "ppid": 1, "name": "postgres", "user": "postgres", "cpu_percent": 12.5,
         "memory_rss_bytes": 3 * 2**20, "memory_percent": 4.2, "status": "sleeping",
         "threads": 7, "started_at": NOW - 3 * 86400 - 5 * 3600,
         "cmdline": "postgres -D /var/lib/postgresql --password=[REDACTED]"}],
    "redactions": 2,
}
PROCESS = {
    "pid": 812, "exists": True, "ppid": 1, "name": "postgres", "exe": "/usr/bin/postgres",
    "cwd": "/var/lib/postgresql", "user": "postgres", "status": "sleeping",
    "started_at": NOW - 2 * 3600, "nice": 0,
    "memory": {"rss_bytes": 512 * 2**20, "vms_bytes": 2 * GIB},
    "memory_percent": 3.1, "cpu_times": {"user_seconds": 4000.0, "system_seconds": 12.5},
    "num_threads": 2,
    "threads": [{"id": 812, "user_seconds": 3000.0, "system_seconds": 10.0},
                {"id": 813, "user_seconds": 1000.0, "system_seconds": 2.5}],
    "open_files_count": 14, "fds_count": 40, "connections_count": 3,
    "connections_by_state": {"ESTABLISHED": 2, "LISTEN": 1},
    "cmdline": "postgres --password=[REDACTED]", "redactions": 1,
    "environment_keys": ["HOME", "PATH", "PGDATA"], "environment_keys_truncated": False,
    "environment_values_withheld": 3,
}
NETWORK = {
    "interfaces": [
        {"name": "eth0", "is_up": True, "speed_mbps": 1000, "mtu_bytes": 1500,
         "duplex": "full",
         "addresses": [{"family": "ipv4", "address": "10.0.0.5", "netmask": "255.255.255.0",
                        "broadcast": "10.0.0.255"},
                       {"family": "link", "address": "52:54:00:12:34:56", "netmask": None,
                        "broadcast": None}],
         "sent_bytes": 3 * GIB, "received_bytes": 12 * GIB, "sent_packets": 100,
         "received_packets": 200, "errors_in": 0, "errors_out": 0, "drops_in": 4,
         "drops_out": 0}],
    "interfaces_truncated": False,
    "listening": [{"protocol": "tcp", "address": "10.0.0.5", "port": 5432, "pid": 812,
                   "process": "postgres"},
                  {"protocol": "udp6", "address": "::", "port": 53, "pid": None,
                   "process": None}],
    "listening_truncated": False,
    "tcp_connections_by_state": {"ESTABLISHED": 12, "TIME_WAIT": 3},
    "tcp_connections": 15, "udp_sockets": 2,
}
SERVICES = {
    "available": True, "total_units": 3, "units_truncated": False,
    "units": [{"unit": "nginx.service", "load": "loaded", "active": "failed",
               "sub": "failed", "description": "A high performance web server"}],
    "units_by_active_state": {"active": 2, "failed": 1},
}
CLOCK = {
    "agent_time_at": NOW + 2.5, "agent_time_utc": "2025-01-01T12:00:02.500000+00:00",
    "monotonic_seconds": 90061.0, "timezone": "Europe/Berlin",
    "timezone_abbreviation": "CET", "utc_offset_seconds": 3600,
    "controller_time_at": NOW, "offset_seconds": 2.5,
}
TCP = {"check": "tcp", "host": "db.internal", "port": 5432, "connected": True,
       "address": "10.0.0.9", "latency_seconds": 0.0123}
TCP_FAILED = {"check": "tcp", "host": "db.internal", "port": 5433,
              "error": "Connection refused"}
DNS = {"check": "dns", "name": "db.internal", "resolved": True,
       "addresses": ["10.0.0.9", "fd00::9"], "latency_seconds": 0.002}
HTTP = {"check": "http", "url": "https://api.example.com/health", "status": 200,
        "reason": "OK", "latency_seconds": 0.25,
        "redirects": [{"status": 301, "location": "https://api.example.com/health/"}]}
TLS = {"check": "tls", "host": "api.example.com", "port": 443,
       "server_name": "api.example.com", "handshake": True, "verified": False,
       "verify_error": "certificate has expired", "protocol": "TLSv1.3",
       "cipher": "TLS_AES_256_GCM_SHA384", "latency_seconds": 0.0456,
       "subject": "CN=api.example.com", "issuer": "CN=Example CA", "serial": "1a2b",
       "dns_names": ["api.example.com"], "ip_addresses": [],
       "not_before_at": NOW - 400 * 86400, "not_after_at": NOW - 10 * 86400,
       "expires_in_seconds": -10 * 86400, "expired": True,
       "sha256_fingerprint": "ab" * 32}
TAIL = {"path": "/var/log/syslog", "size_bytes": 5 * 2**20,
        "lines": ["Jan 1 12:00:00 web-1 sshd[1]: Accepted publickey",
                  "Jan 1 12:00:01 web-1 app: password=[REDACTED] ^[[31m"],
        "line_count": 2, "redactions": 1, "lines_cut": 0, "lines_dropped_for_size": 0}
SEARCH = {"unit": "nginx.service", "pattern": "timeout", "regex": False, "ignore_case": True,
          "matches": [{"offset_bytes": None, "line": "2025-01-01T12:00:00 upstream timeout"}],
          "match_count": 7, "redactions": 0, "scanned_lines": 10000, "complete": False,
          "lines_dropped_for_size": 0}
STAT = {"path": "/etc/nginx/nginx.conf", "real_path": "/etc/nginx/nginx.conf",
        "type": "file", "size_bytes": 2048, "permissions": "-rw-r--r--", "mode": "0644",
        "uid": 0, "owner": "root", "gid": 0, "group": "root",
        "modified_at": NOW - 3 * 3600, "accessed_at": NOW - 60, "changed_at": NOW - 3 * 3600,
        "inode": 1234, "device": 2049, "links": 1}
HASH = {"path": "/opt/app/app.jar", "real_path": "/opt/app/releases/1.2/app.jar",
        "sha256": "0f" * 32, "size_bytes": 5 * 2**20, "duration_seconds": 0.031}
DATABASE = {"name": "main", "engine": "postgresql", "reachable": True,
            "version": "16.2", "size_bytes": 8 * 2**20, "latency_seconds": 0.0042,
            "long_running_queries": [{"pid": 4242, "state": "active",
                                      "duration_seconds": 12.34,
                                      "query": "SELECT pg_sleep(8) /* password=*** */"}],
            "lock_waits": []}
DATABASE_DOWN = {"name": "cache", "engine": "sqlite", "reachable": False,
                 "error": "unable to open database file", "version": None,
                 "size_bytes": None, "latency_seconds": None}
MISSING = {"path": "/etc/nginx/missing.conf", "error": "not-found",
           "message": "no such file or directory"}

# (arguments, operation, parameters signed, result, texts shown)
CASES: list[tuple[list[str], str, dict[str, Any], Any, list[str]]] = [
    (["diag", "cpu", "--interval", "2"], "diag.cpu", {"interval": 2.0}, CPU,
     ["37.5 % over 0.5 s", "4 logical, 2 physical", "1.50 0.75 0.50", "2400 MHz",
      "user 30.0 %", "iowait 2.5 %", "Per core", "80.0 %", "2100 MHz"]),
    (["diag", "memory"], "diag.memory", {}, MEMORY,
     ["Memory", "Swap", "16.0 GiB", "6.0 GiB", "62.5 %", "512.0 MiB", "25.0 %"]),
    (["diag", "disks"], "diag.disks", {}, DISKS,
     ["/dev/sda1", "100.0 GiB", "93.0 %", "10.0 %", "2.0 TiB", "Disk I/O", "sda",
      "2h", "1 value hidden by redaction"]),
    (["diag", "processes", "--by", "memory", "--interval", "0"], "diag.processes",
     {"by": "memory", "limit": 10, "interval": 0.0}, PROCESSES,
     ["Top 1 of 245", "postgres", "3.0 MiB", "12.5 %", "4.2 %", "3d 5h",
      "--password=[REDACTED]", "2 values hidden by redaction"]),
    (["diag", "process", "812"], "diag.process", {"pid": 812}, PROCESS,
     ["/usr/bin/postgres", "512.0 MiB", "2.0 GiB", "1h 6m", "(2h", "3 variables",
      "HOME, PATH, PGDATA", "Threads", "postgres --password=[REDACTED]",
      "1 value hidden by redaction"]),
    (["diag", "network"], "diag.network", {}, NETWORK,
     ["eth0", "10.0.0.5", "52:54:00:12:34:56", "1000 Mb/s", "1500 B", "12.0 GiB",
      "5432", "postgres", "udp6", "15 (ESTABLISHED 12, TIME_WAIT 3)"]),
    (["diag", "services", "--failed"], "diag.services", {"failed_only": True}, SERVICES,
     ["nginx.service", "failed", "3 services: active 2, failed 1"]),
    (["diag", "connect", "tcp", "db.internal", "5432"], "diag.connect",
     {"check": "tcp", "host": "db.internal", "port": 5432, "timeout": 5.0}, TCP,
     ["tcp db.internal:5432", "connected", "12 ms", "10.0.0.9"]),
    (["diag", "connect", "tcp", "db.internal", "5433", "--timeout", "1.5"], "diag.connect",
     {"check": "tcp", "host": "db.internal", "port": 5433, "timeout": 1.5}, TCP_FAILED,
     ["failed: Connection refused"]),
    (["diag", "connect", "dns", "db.internal"], "diag.connect",
     {"check": "dns", "name": "db.internal", "timeout": 5.0}, DNS,
     ["resolved", "10.0.0.9, fd00::9", "2.0 ms"]),
    (["diag", "connect", "http", "https://api.example.com/health", "--insecure"],
     "diag.connect", {"check": "http", "url": "https://api.example.com/health",
                      "verify": False, "timeout": 5.0}, HTTP,
     ["HTTP 200 OK", "250 ms", "301 to https://api.example.com/health/"]),
    (["diag", "connect", "tls", "10.0.0.7", "443", "--server-name", "api.example.com"],
     "diag.connect", {"check": "tls", "host": "10.0.0.7", "port": 443, "timeout": 5.0,
                      "server_name": "api.example.com"}, TLS,
     ["NOT verified: certificate has expired", "EXPIRED 10d ago", "TLSv1.3",
      "CN=Example CA", "46 ms"]),
    (["logs", "tail", "--file", "/var/log/syslog", "-n", "2"], "logs.tail",
     {"path": "/var/log/syslog", "lines": 2}, TAIL,
     ["last 2 lines of /var/log/syslog, 5.0 MiB", "Accepted publickey",
      "password=[REDACTED] ^[[31m", "1 value hidden by redaction"]),
    (["logs", "search", "--unit", "nginx.service", "timeout", "-i", "--limit", "1"],
     "logs.search", {"unit": "nginx.service", "pattern": "timeout", "regex": False,
                     "ignore_case": True, "limit": 1}, SEARCH,
     ['7 matching lines for "timeout" (ignoring case) in unit nginx.service',
      "10000 lines searched", "most recent 1 shown", "upstream timeout", "incomplete"]),
    (["files", "stat", "/etc/nginx/nginx.conf"], "files.stat",
     {"path": "/etc/nginx/nginx.conf"}, STAT,
     ["/etc/nginx/nginx.conf", "2.0 KiB (2048 bytes)", "-rw-r--r-- (0644)", "root (0)",
      "(3h", "Inode"]),
    (["files", "stat", "/etc/nginx/missing.conf"], "files.stat",
     {"path": "/etc/nginx/missing.conf"}, MISSING,
     ["not-found: no such file or directory"]),
    (["diag", "database", "main"], "diag.database", {"name": "main"}, DATABASE,
     ["main (postgresql)", "reachable", "16.2", "8.0 MiB", "4.2 ms", "4242", "12.3 s",
      "pg_sleep(8) /* password=*** */", "Waiting for a lock: none"]),
    (["diag", "database", "cache"], "diag.database", {"name": "cache"}, DATABASE_DOWN,
     ["cache (sqlite)", "unreachable: unable to open database file"]),
    (["files", "hash", "/opt/app/app.jar"], "files.hash", {"path": "/opt/app/app.jar"}, HASH,
     ["0f" * 32, "/opt/app/releases/1.2/app.jar", "5.0 MiB", "31 ms"]),
]
IDS = [" ".join(args[:3]) for args, *_ in CASES]


@pytest.fixture
def alice(home_factory: Callable[..., Home]) -> Home:
    return home_factory()


def in_session(runner: CliRunner, home: Home, channel: FakeChannel, result: Any) -> None:
    channel.handlers["OpenSession"] = open_session_handler()
    channel.handlers["RunOperation"] = FakeAgent(result)
    assert rmctl(runner, home, "session", "open", "--case", "C-0001", "--agent", "web-1")[0] == 0


@pytest.mark.parametrize(("args", "operation", "params", "result", "shown"), CASES, ids=IDS)
def test_parameters_are_signed_and_the_result_is_readable(
        runner: CliRunner, alice: Home, channel: FakeChannel, args: list[str], operation: str,
        params: dict[str, Any], result: Any, shown: list[str]) -> None:
    in_session(runner, alice, channel, result)
    code, out, err = rmctl(runner, alice, *args)
    assert code == (1 if {"error", "message"} <= set(result) else 0), out + err
    [op] = signed_operations(channel, alice)
    assert (op.operation, op.params) == (operation, params)
    for text in shown:
        assert text in out, f"{text!r} not in:\n{out}"
    assert "receipt sha256:" in out and "event 41" in out
    if not result.get("redactions"):
        assert "hidden by redaction" not in out


@pytest.mark.parametrize(("args", "operation", "params", "result", "shown"), CASES, ids=IDS)
def test_json_prints_the_agents_result_as_is(
        runner: CliRunner, alice: Home, channel: FakeChannel, args: list[str], operation: str,
        params: dict[str, Any], result: Any, shown: list[str]) -> None:
    in_session(runner, alice, channel, result)
    code, out, err = rmctl(runner, alice, *args, "--json")
    assert code == (1 if {"error", "message"} <= set(result) else 0), err
    assert json.loads(out) == result
    assert err.startswith("receipt sha256:")


def test_clock_sends_this_machines_time_and_labels_the_offset(
        runner: CliRunner, alice: Home, channel: FakeChannel) -> None:
    in_session(runner, alice, channel, CLOCK)
    before = time.time()
    code, out, _ = rmctl(runner, alice, "diag", "clock")
    after = time.time()
    assert code == 0, out
    [op] = signed_operations(channel, alice)
    assert op.operation == "diag.clock" and set(op.params) == {"controller_time"}
    assert before - 0.001 <= op.params["controller_time"] <= after + 0.001
    for text in ("Offset (agent minus this machine)", "+2.500 s (agent ahead",
                 "Europe/Berlin (CET, UTC+01:00)", "Agent time (this machine's zone)",
                 "2025-01-01T12:00:02.500000+00:00", "1d 1h"):
        assert text in out, out


def test_unavailable_results_say_why(runner: CliRunner, alice: Home,
                                     channel: FakeChannel) -> None:
    in_session(runner, alice, channel, {"available": False,
                                        "reason": "systemd is not running on this host"})
    code, out, _ = rmctl(runner, alice, "diag", "services")
    assert code == 0
    assert "not available: systemd is not running on this host" in out
    assert signed_operations(channel, alice)[0].params == {"failed_only": False}


def test_a_process_that_is_gone(runner: CliRunner, alice: Home, channel: FakeChannel) -> None:
    in_session(runner, alice, channel, {"pid": 4242, "exists": False})
    code, out, _ = rmctl(runner, alice, "diag", "process", "4242")
    assert code == 1 and "no process 4242 on the agent" in out
    assert "receipt sha256:" in out  # the refusal is still a signed, logged answer


@pytest.mark.parametrize("error", ["outside-allowlist", "not-found", "not-a-file"])
def test_a_hash_the_agent_refuses_exits_1(runner: CliRunner, alice: Home, channel: FakeChannel,
                                          error: str) -> None:
    in_session(runner, alice, channel, {"path": "/srv/escape", "error": error,
                                        "message": "refused"})
    code, out, _ = rmctl(runner, alice, "files", "hash", "/srv/escape")
    assert code == 1 and f"{error}: refused" in out


def test_logs_defaults_and_a_regex_search(runner: CliRunner, alice: Home,
                                          channel: FakeChannel) -> None:
    in_session(runner, alice, channel, TAIL)
    assert rmctl(runner, alice, "logs", "tail", "--unit", "nginx.service")[0] == 0
    assert rmctl(runner, alice, "logs", "search", "--file", "/var/log/app.log", "--regex",
                 "err(or)?")[0] == 0
    tail, search = signed_operations(channel, alice)
    assert tail.params == {"unit": "nginx.service", "lines": 100}
    assert search.params == {"path": "/var/log/app.log", "pattern": "err(or)?", "regex": True,
                             "ignore_case": False, "limit": 100}


@pytest.mark.parametrize("source", [[], ["--file", "/var/log/syslog", "--unit", "x.service"]])
def test_logs_need_exactly_one_source(runner: CliRunner, alice: Home, channel: FakeChannel,
                                      source: list[str]) -> None:
    result = runner.invoke(app, ["--home", str(alice.path), "logs", "tail", *source])
    assert result.exit_code == 2
    assert "exactly one of --file PATH or --unit UNIT" in result.output
    assert channel.calls == []


def test_control_characters_from_the_agent_never_reach_the_terminal(
        runner: CliRunner, alice: Home, channel: FakeChannel) -> None:
    in_session(runner, alice, channel, {**TAIL, "lines": ["evil \x1b]0;title\x07 line"]})
    code, out, _ = rmctl(runner, alice, "logs", "tail", "--file", "/var/log/syslog")
    assert code == 0
    assert "\x1b" not in out and "evil ^[]0;title^G line" in out


@pytest.mark.parametrize("path", ["diag cpu", "diag connect tls", "logs search", "files hash"])
def test_help_names_the_session_options(runner: CliRunner, path: str) -> None:
    result = runner.invoke(app, [*path.split(), "--help"])
    assert result.exit_code == 0
    for option in ("--session", "--case", "--agent", "--json"):
        assert option in result.output
