"""Secrets in command lines are masked on the agent, and counted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.redact import MASK, redact_args, redact_text

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("args", "expected", "count"), [
    (["mysql", "--password", "hunter2", "-u", "root"],
     ["mysql", "--password", MASK, "-u", "root"], 1),
    (["mysql", "--password=hunter2"], ["mysql", f"--password={MASK}"], 1),
    (["env", "PGPASSWORD=abc", "DB_TOKEN=xyz"],
     ["env", f"PGPASSWORD={MASK}", f"DB_TOKEN={MASK}"], 2),
    (["psql", "postgres://bob:s3cr3t@db:5432/x"],
     ["psql", f"postgres://bob:{MASK}@db:5432/x"], 1),
    (["curl", "https://h/api?token=abc&page=2"],
     ["curl", f"https://h/api?token={MASK}&page=2"], 1),
    (["curl", "-H", "Authorization: Bearer abc.def"],
     ["curl", "-H", f"Authorization: Bearer {MASK}"], 1),
    (["curl", "-H", "Authorization:", "Bearer", "abc"],
     ["curl", "-H", "Authorization:", "Bearer", MASK], 1),
    (["app", "--api-key", "k1", "--client-secret=k2", "SECRET_KEY=k3"],
     ["app", "--api-key", MASK, f"--client-secret={MASK}", f"SECRET_KEY={MASK}"], 3),
    (["ls", "-la", "/var/log"], ["ls", "-la", "/var/log"], 0),
    # A secret-naming flag followed by another flag leaves the flag visible...
    (["app", "--api-key", "--verbose"], ["app", "--api-key", "--verbose"], 0),
    # ...but --password/--passwd/--secret/--token always take a value, dashes and all.
    (["sshd", "-D", "--passwd", "-x"], ["sshd", "-D", "--passwd", MASK], 1),
    (["https://token:abc@host/x"], [f"https://token:{MASK}@host/x"], 1),
])
def test_redact_args(args: list[str], expected: list[str], count: int) -> None:
    redacted = redact_args(args)
    assert list(redacted.args) == expected
    assert redacted.redactions == count
    assert redacted.text == " ".join(expected)


def test_secret_values_never_survive() -> None:
    secrets = ["hunter2", "s3cr3t", "abc.def", "xyz"]
    line = ("run --password hunter2 postgres://u:s3cr3t@h "
            "-H 'Authorization: Bearer abc.def' SECRET_KEY=xyz")
    redacted = redact_args(line.split(" "))
    assert not any(s in redacted.text for s in secrets)
    assert redacted.redactions == 4


def test_redact_text_leaves_ordinary_words() -> None:
    assert redact_text("author=bob passage=1 nginx: worker process") == \
        ("author=bob passage=1 nginx: worker process", 0)


@pytest.mark.parametrize(("args", "expected", "count"), [
    # mysql/mariadb and their tools: -pVALUE attached; -p alone prompts, -P is the port.
    (["mysql", "-pS3cretPw"], ["mysql", f"-p{MASK}"], 1),
    (["/usr/bin/mysqldump", "-h", "db1", "-u", "backup", "-pS3cret", "-P", "3306", "shop"],
     ["/usr/bin/mysqldump", "-h", "db1", "-u", "backup", f"-p{MASK}", "-P", "3306", "shop"], 1),
    (["sudo", "mariadb", "-uroot", "-ps3"], ["sudo", "mariadb", "-uroot", f"-p{MASK}"], 1),
    (["mysql", "-h", "host", "-u", "user", "-p"], ["mysql", "-h", "host", "-u", "user", "-p"], 0),
    # sshpass: -p VALUE and -pVALUE, but not the -p (port) of the command it wraps.
    (["sshpass", "-p", "pw", "ssh", "-p", "2222", "host"],
     ["sshpass", "-p", MASK, "ssh", "-p", "2222", "host"], 1),
    (["sshpass", "-ppw", "ssh", "-p22", "host"],
     ["sshpass", f"-p{MASK}", "ssh", "-p22", "host"], 1),
    (["sshpass", "-P", "assword:", "-p", "-pw-", "ssh", "host"],
     ["sshpass", "-P", "assword:", "-p", MASK, "ssh", "host"], 1),
    # redis-cli -a VALUE, whatever the value looks like.
    (["redis-cli", "-h", "cache", "-a", "pw", "GET", "k"],
     ["redis-cli", "-h", "cache", "-a", MASK, "GET", "k"], 1),
    (["/opt/redis/bin/redis-cli", "-a", "-dash"], ["/opt/redis/bin/redis-cli", "-a", MASK], 1),
    # Headers carrying credentials.
    (["curl", "-H", "X-Api-Key: abc123"], ["curl", "-H", f"X-Api-Key: {MASK}"], 1),
    (["curl", "-H", "Api-Key:abc123"], ["curl", "-H", f"Api-Key:{MASK}"], 1),
    (["curl", "--header=X-Auth-Token: t0k"], ["curl", f"--header=X-Auth-Token: {MASK}"], 1),
    (["curl", "-HX-Api-Key: abc"], ["curl", f"-HX-Api-Key: {MASK}"], 1),
    (["curl", "-H", "Authorization: Basic dXNlcjpwYXNz"],
     ["curl", "-H", f"Authorization: Basic {MASK}"], 1),
    (["curl", "-H", 'Authorization: Digest username="u", response="6629fae4"'],
     ["curl", "-H", f'Authorization: Digest {MASK}"'], 1),
    (["curl", "-H", "Proxy-Authorization: Custom k"],
     ["curl", "-H", f"Proxy-Authorization: Custom {MASK}"], 1),
    # --password and friends followed by a value that starts with a dash.
    (["app", "--password", "-dashpw"], ["app", "--password", MASK], 1),
    (["app", "--token", "--x", "--secret", "-s", "-v"],
     ["app", "--token", MASK, "--secret", MASK, "-v"], 2),
    # Harmless look-alikes stay.
    (["ls", "-p", "/var/log"], ["ls", "-p", "/var/log"], 0),
    (["ls", "-pX"], ["ls", "-pX"], 0),
    (["psql", "-h", "db", "-p", "5432", "-U", "app"],
     ["psql", "-h", "db", "-p", "5432", "-U", "app"], 0),
    (["curl", "-H", "Accept: text/html", "-H", "X-Request-Id: 42"],
     ["curl", "-H", "Accept: text/html", "-H", "X-Request-Id: 42"], 0),
    (["ssh", "-p", "22", "host"], ["ssh", "-p", "22", "host"], 0),
])
def test_redact_tool_flags_headers_and_dashed_values(args: list[str], expected: list[str],
                                                     count: int) -> None:
    redacted = redact_args(args)
    assert list(redacted.args) == expected
    assert redacted.redactions == count


def test_header_in_free_text_stops_at_its_closing_quote() -> None:
    assert redact_text("curl -H 'X-Api-Key: abc' -d x -H \"Authorization: Bearer q\" done") == \
        (f"curl -H 'X-Api-Key: {MASK}' -d x -H \"Authorization: Bearer {MASK}\" done", 2)


def test_crafted_command_lines_redact_in_linear_time() -> None:
    """Any local user writes command lines: none may make redaction backtrack for long.

    Run in a child process with a deadline: a backtracking pattern holds the interpreter
    (no thread can interrupt it), and these inputs took hours before.
    """
    script = (
        "from agent.redact import redact_args\n"
        "for unit in ('token-', 'token_', 'a-', 'X-Api-', 'a:', 'password=', 'http:'):\n"
        "    arg = unit * (100_000 // len(unit))\n"
        "    redact_args(['mysql', arg, '-H', arg, '--password', arg, arg + ':x'])\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30, cwd=ROOT)
