"""Secrets in command lines are masked on the agent, and counted."""

from __future__ import annotations

import pytest

from agent.redact import MASK, redact_args, redact_text


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
    (["sshd", "-D", "--passwd", "-x"], ["sshd", "-D", "--passwd", "-x"], 0),
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
