"""Log lines are redacted before they leave the host; every redaction is counted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import redact
from agent.redact import MASK, LineRedactor, redact_command, redact_line, redact_tokens

ROOT = Path(__file__).resolve().parents[3]
AWS = "AKIAIOSFODNN7EXAMPLE"
GOOGLE = "AIza" + "Sy9-8_7" * 5
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(("line", "expected", "count"), [
    ("login ok user=bob", "login ok user=bob", 0),
    ("db url postgres://app:s3cr3t@db:5432/shop", f"db url postgres://app:{MASK}@db:5432/shop", 1),
    ("retry password=hunter2 attempt=2", f"retry password={MASK} attempt=2", 1),
    ("config password: hunter2", f"config password: {MASK}", 1),
    ("config Password = hunter2;", f"config Password = {MASK};", 1),
    ('{"user": "bob", "password": "hun ter2", "n": 1}',
     f'{{"user": "bob", "password": "{MASK}", "n": 1}}', 1),
    ('{"api_key":"k-1","client_secret": "s\\"x"}',
     f'{{"api_key":"{MASK}","client_secret": "{MASK}"}}', 2),
    ("secret='two words' ok", f"secret='{MASK}' ok", 1),
    ("GET /x Authorization: Bearer abc.def", f"GET /x Authorization: Bearer {MASK}", 1),
    ("sent header bearer abc123", f"sent header bearer {MASK}", 1),
    ("token = abc", f"token = {MASK}", 1),
    (f"aws key {AWS} used", f"aws key {MASK} used", 1),
    (f"key={AWS}", f"key={MASK}", 1),
    (f"google {GOOGLE}", f"google {MASK}", 1),
    ("oauth ya29.a0AfH6SMBx-y_z", f"oauth {MASK}", 1),
    (f"session {JWT} end", f"session {MASK} end", 1),
    ("gh ghp_" + "a1" * 18, f"gh {MASK}", 1),
    ("slack xoxb-123456789012-abcdef", f"slack {MASK}", 1),
    ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc+/==;EndpointSuffix=x",
     f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={MASK};EndpointSuffix=x", 1),
    ("Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey=k3y=",
     f"Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey={MASK}", 1),
    ("GET https://acct.blob/c?sv=2020&sig=AbC%2F&se=1", f"GET https://acct.blob/c?sv=2020&sig={MASK}&se=1",
     1),
    ("k: -----BEGIN\x20RSA PRIVATE KEY-----\\nMIIEow\\n-----END RSA PRIVATE KEY----- done",
     f"k: -----BEGIN\x20RSA PRIVATE KEY-----{MASK}-----END RSA PRIVATE KEY----- done", 1),
    # Look-alikes stay.
    ("AKIA is a prefix, AKIAshort too", "AKIA is a prefix, AKIAshort too", 0),
    ("author: bob; passage: 3", "author: bob; passage: 3", 0),
    ("see https://example.com/a:b@c", "see https://example.com/a:b@c", 0),
    ('"password": ""', '"password": ""', 0),
])
def test_redact_line(line: str, expected: str, count: int) -> None:
    assert redact_line(line) == (expected, count)


def test_key_block_across_lines_is_hidden_line_by_line() -> None:
    lines = ["start", "-----BEGIN\x20OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXktdjE",
             "AAAABG5vbmU=", "-----END OPENSSH PRIVATE KEY-----", "after password=x"]
    redactor = LineRedactor()
    out = [redactor.redact(line) for line in lines]
    assert out == [("start", 0), ("-----BEGIN\x20OPENSSH PRIVATE KEY-----", 0), (MASK, 1),
                   (MASK, 1), ("-----END OPENSSH PRIVATE KEY-----", 0),
                   (f"after password={MASK}", 1)]


def test_the_end_of_a_block_begun_before_is_hidden_up_to_its_marker() -> None:
    assert LineRedactor().redact("AAAA-----END PRIVATE KEY-----") == \
        (f"{MASK}-----END PRIVATE KEY-----", 1)


def test_secret_values_never_survive_in_log_lines() -> None:
    secrets = ["hunter2", "s3cr3t", AWS, GOOGLE, JWT, "MIIEow", "k3y"]
    text = (f"a password: hunter2 b postgres://u:s3cr3t@h c {AWS} d {GOOGLE} e {JWT} "
            "-----BEGIN\x20PRIVATE KEY-----MIIEow-----END PRIVATE KEY----- SharedAccessKey=k3y")
    redacted, count = redact_line(text)
    assert not any(secret in redacted for secret in secrets)
    assert count == len(secrets)


def test_tokens_in_command_lines() -> None:
    redacted = redact_command(["aws", "s3", "ls", "--profile", AWS, "--password", "x"])
    assert redacted.args == ("aws", "s3", "ls", "--profile", MASK, "--password", MASK)
    assert redacted.redactions == 2
    assert redact_tokens("no tokens here") == ("no tokens here", 0)


def test_crafted_log_lines_redact_in_linear_time() -> None:
    """Anyone who can write to a log chooses its lines: none may make redaction backtrack."""
    script = (
        "from agent.redact import LineRedactor\n"
        "units = ('password: \"', 'password: ', '\"token\":\"', '-----BEGIN ', 'eyJ-', 'eyJa.',\n"
        "         'AKIA', 'ghp_', 'xoxb-', 'a-', 'Bearer ', 'k=', '-----END PRIVATE KEY-----',\n"
        "         '-----BEGIN\x20PRIVATE KEY-----x', \"secret='\", 'ya29.', 'AIza')\n"
        "for unit in units:\n"
        "    line = unit * (100_000 // len(unit))\n"
        "    r = LineRedactor()\n"
        "    r.redact(line); r.redact(line + 'x'); r.redact(line[::-1])\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30, cwd=ROOT)


@pytest.mark.parametrize("name", [
    "password", "PASSWD", "passphrase", "pwd", "secret", "TOKEN", "api_key", "apikey",
    "access-key", "auth", "credentials", "private_key", "client-secret", "session_key",
    "AccountKey", "sig", "Authorization", "X-Api-Key", "api\u212aey", "\u017fig",
])
def test_the_fast_precheck_never_skips_a_secret_name(name: str) -> None:
    assert redact.may_name_secret(f"x {name}=v")


_FRAGMENTS = ["password", "token", "Bearer ", "basic", "key", "=", ":", " ", "\"", "'", "://",
              "@", "u:p@h", "abc", "X-Api-Key", "-", "_", "&", "\u212a", "\t", "\u0130", "AKIA",
              "-----BEGIN\x20PRIVATE KEY-----", "-----END PRIVATE KEY-----", "auth", "\u017f"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=14).map("".join))
def test_the_fast_prechecks_change_no_result(text: str) -> None:
    gated = (redact.redact_text(text), redact_line(text))
    with pytest.MonkeyPatch.context() as patch:  # every step runs, as before the pre-checks
        for check in ("may_name_secret", "_may_hold_url", "_may_hold_scheme"):
            patch.setattr(redact, check, lambda text: True)
        assert (redact.redact_text(text), redact_line(text)) == gated
