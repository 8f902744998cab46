"""The [diag] section of agent.toml: strict, deny by default, kept across rewrites."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent import config as c
from agent.diag import policy
from agent.diag.policy import DiagConfig

HEAD = "[agent]\nid='web-1'\ntrust_domain='example.test'\n"


def _load(tmp_path: Path, diag: str) -> c.AgentConfig:
    (tmp_path / "agent.toml").write_text(HEAD + "[diag]\n" + diag)
    return c.load(tmp_path)


def test_no_section_allows_nothing(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(HEAD)
    diag = c.load(tmp_path).diag
    assert diag == DiagConfig()
    assert (diag.log_files, diag.journald_units, diag.file_roots, diag.connect_allow) == \
        ((), (), (), ())
    assert diag.max_hash_bytes == 1 << 30
    assert not diag.allows_connect("127.0.0.1", 80) and not diag.allows_name("localhost")


def test_section_is_read_and_normalized(tmp_path: Path) -> None:
    diag = _load(tmp_path, """
log_files = ["/var/log/app.log", "/var/log//app2.log/", "/var/log/app.log"]
journald_units = ["nginx.service", "app@1.service"]
file_roots = ["/etc/app/"]
connect_allow = ["db.internal:5432", "*.Example.com:443", "10.0.0.7:22", "[::1]:8080"]
max_hash_bytes = 4096
""").diag
    assert diag.log_files == ("/var/log/app.log", "/var/log/app2.log")
    assert diag.file_roots == ("/etc/app",)
    assert diag.journald_units == ("nginx.service", "app@1.service")
    assert diag.max_hash_bytes == 4096
    assert diag.allows_connect("db.internal", 5432) and diag.allows_connect("DB.INTERNAL.", 5432)
    assert not diag.allows_connect("db.internal", 5433)
    assert diag.allows_connect("a.example.com", 443) and diag.allows_connect("a.b.EXAMPLE.com", 443)
    assert not diag.allows_connect("example.com", 443)
    assert not diag.allows_connect("badexample.com", 443)
    assert not diag.allows_connect("a.example.com.evil.net", 443)
    assert diag.allows_connect("10.0.0.7", 22) and not diag.allows_connect("10.0.0.70", 22)
    assert diag.allows_connect("::1", 8080) and diag.allows_connect("[0:0::1]", 8080)
    assert diag.allows_name("x.example.com") and diag.allows_name("db.internal")
    assert not diag.allows_name("internal")


@pytest.mark.parametrize(("text", "message"), [
    ("colour = 'red'\n", "unknown key in \\[diag\\]"),
    ("log_files = '/var/log/x'\n", "list of strings"),
    ("log_files = [1]\n", "list of strings"),
    ("log_files = ['var/log/x']\n", "absolute"),
    ("log_files = ['/var/log/../x']\n", "'..'"),
    ("file_roots = ['']\n", "absolute"),
    ("journald_units = ['-x']\n", "unit name"),
    ("journald_units = ['nginx*']\n", "unit name"),
    ("journald_units = ['a b']\n", "unit name"),
    ("connect_allow = ['db.internal']\n", "host:port"),
    ("connect_allow = ['db.internal:0']\n", "host:port"),
    ("connect_allow = ['db.internal:65536']\n", "host:port"),
    ("connect_allow = ['db.internal:*']\n", "host:port"),
    ("connect_allow = ['*:443']\n", "invalid host"),
    ("connect_allow = ['*.10.0.0.1:443']\n", "invalid host"),
    ("connect_allow = ['a..b:443']\n", "invalid host"),
    ("connect_allow = ['::1:443']\n", "host:port"),
    ("max_hash_bytes = 0\n", "max_hash_bytes"),
    ("max_hash_bytes = true\n", "max_hash_bytes"),
    ("max_hash_bytes = '1G'\n", "max_hash_bytes"),
])
def test_bad_entries_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(c.ConfigInvalid, match=message):
        _load(tmp_path, text)


def test_diag_must_be_a_table(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(HEAD.replace("[agent]", "diag = 1\n[agent]"))
    with pytest.raises(c.ConfigInvalid, match="must be a table"):
        c.load(tmp_path)


def test_rewriting_the_file_keeps_the_section(tmp_path: Path) -> None:
    diag = DiagConfig(log_files=("/var/log/app.log",), file_roots=("/etc/app",),
                      journald_units=("nginx.service",), connect_allow=("db.internal:5432",),
                      max_hash_bytes=10)
    c.save(tmp_path, c.AgentConfig(id="web-1", trust_domain="example.test", diag=diag))
    c.pin_approver(tmp_path, "alice", ed25519.Ed25519PrivateKey.generate().public_key())
    assert c.load(tmp_path).diag == diag


def test_saving_refuses_entries_not_in_normal_form(tmp_path: Path) -> None:
    for diag in (DiagConfig(log_files=("/var/log//x",)), DiagConfig(file_roots=("etc",)),
                 DiagConfig(connect_allow=("nohost",))):
        with pytest.raises(c.ConfigInvalid):
            c.save(tmp_path, c.AgentConfig(id="web-1", trust_domain="example.test", diag=diag))


@pytest.mark.parametrize(("host", "expected"), [
    ("Example.COM.", "example.com"), ("[::1]", "::1"), ("0:0::1", "::1"),
    ("10.0.0.1", "10.0.0.1"), ("under_score.local", "under_score.local"),
    ("", None), ("a b", None), ("-a.com", None), ("a" * 64 + ".com", None), ("[1.2.3.4]", None),
    ("é.com", None),
])
def test_normalize_host(host: str, expected: str | None) -> None:
    assert policy.normalize_host(host) == expected
