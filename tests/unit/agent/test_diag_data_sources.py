"""[[diag.data_sources]] of agent.toml: strict, kept across rewrites, never shown."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from agent import config as c
from agent.catalogue import CATALOGUE, build_catalogue
from agent.diag import policy
from agent.diag.database import DatabaseQuery, redact_query
from agent.diag.policy import DataSource, DiagConfig, DiagConfigInvalid
from agent.errors import InvalidParams

HEAD = "[agent]\nid='web-1'\ntrust_domain='example.test'\n"
SOURCES = """
[[diag.data_sources]]
name = "main"
engine = "postgresql"
host = "db.internal"
port = 6432
database = "app"
user = "monitor"
password = "s3cr3t-pw"

[[diag.data_sources]]
name = "cache"
engine = "sqlite"
path = "/srv/app//cache.db"
"""
PG: dict[str, Any] = {"name": "main", "engine": "postgresql", "host": "db.internal",
                      "database": "app", "user": "monitor"}


def test_sources_are_read_normalized_and_kept_across_rewrites(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(HEAD + SOURCES)
    config = c.load(tmp_path)
    main, cache = config.diag.data_sources
    assert main == DataSource("main", "postgresql", host="db.internal", port=6432,
                              database="app", user="monitor", password="s3cr3t-pw")  # noqa: S106
    assert cache == DataSource("cache", "sqlite", path="/srv/app/cache.db")
    assert "s3cr3t-pw" not in repr(config.diag) and "s3cr3t-pw" not in repr(main)
    assert policy.parse(policy.to_toml(config.diag)) == config.diag
    c.save(tmp_path, config)
    assert c.load(tmp_path).diag == config.diag


def test_port_defaults_and_password_is_optional() -> None:
    (source,) = policy.parse({"data_sources": [PG]}).data_sources
    assert source.port == 5432 and source.password is None
    assert "password" not in source.to_toml()
    socket_dir = policy.parse({"data_sources": [PG | {"host": "/var/run/postgresql"}]})
    assert socket_dir.data_sources[0].host == "/var/run/postgresql"


@pytest.mark.parametrize(("entries", "message"), [
    ({"name": "x"}, "array of tables"),
    (["x"], "must be a table"),
    ([PG | {"engine": "mysql"}], "engine"),
    ([{k: v for k, v in PG.items() if k != "engine"}], "engine"),
    ([PG | {"pasword": "x"}], "unknown key"),
    ([PG | {"path": "/x.db"}], "unknown key"),
    ([{"name": "c", "engine": "sqlite", "path": "/x.db", "host": "h"}], "unknown key"),
    ([PG | {"port": 0}], "port"), ([PG | {"port": 65536}], "port"),
    ([PG | {"port": "5432"}], "port"), ([PG | {"port": True}], "port"),
    ([PG | {"name": ""}], "name"), ([PG | {"name": "a b"}], "name"),
    ([PG | {"name": 1}], "name"),
    ([PG, PG | {"host": "other"}], "duplicate name main"),
    ([{k: v for k, v in PG.items() if k != "host"}], "host"),
    ([{k: v for k, v in PG.items() if k != "user"}], "user"),
    ([{k: v for k, v in PG.items() if k != "database"}], "database"),
    ([PG | {"host": "db internal"}], "host"), ([PG | {"password": 1}], "password"),
    ([{"name": "c", "engine": "sqlite"}], "path"),
    ([{"name": "c", "engine": "sqlite", "path": "cache.db"}], "absolute"),
    ([{"name": "c", "engine": "sqlite", "path": "/srv/../etc/x.db"}], "'..'"),
])
def test_invalid_sources_are_refused(entries: Any, message: str) -> None:
    with pytest.raises(DiagConfigInvalid, match=message) as caught:
        policy.parse({"data_sources": entries})
    assert "diag.data_sources" in str(caught.value)


def test_an_invalid_source_in_agent_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(HEAD + SOURCES.replace("6432", "70000"))
    with pytest.raises(c.ConfigInvalid, match="port"):
        c.load(tmp_path)


def test_the_name_must_be_a_configured_source() -> None:
    diag = policy.parse({"data_sources": [PG]})
    runner = build_catalogue(diag)["diag.database"].prepare({"name": "main"})
    assert callable(runner)
    for params, message in [({"name": "other"}, "diag.data_sources"), ({}, "name"),
                            ({"name": 1}, "name"), ({"name": "main", "host": "x"}, "unknown")]:
        with pytest.raises(InvalidParams, match=message):
            build_catalogue(diag)["diag.database"].prepare(params)
    with pytest.raises(InvalidParams, match=r"agent\.toml"):
        CATALOGUE["diag.database"].prepare({"name": "main"})
    assert DatabaseQuery(diag.data_sources[0]) == DatabaseQuery(diag.data_sources[0])


def test_queries_are_redacted_and_truncated() -> None:
    assert "hunter2" not in redact_query("ALTER ROLE bob WITH PASSWORD 'hunter2' LOGIN")
    assert "hunter2" not in redact_query("CREATE USER bob password $x$hunter2$x$")
    assert "abc" not in redact_query("SELECT * FROM t WHERE token='abc'")
    assert "pw" not in redact_query("SELECT dblink('postgresql://u:pw@h/db', 'x')")
    assert len(redact_query("SELECT " + "x" * 1000)) == 500
    assert redact_query("SELECT  pg_sleep(8)\n") == "SELECT pg_sleep(8)"
    assert DiagConfig().data_source("x") is None


def test_errors_never_show_the_password() -> None:
    from agent.diag.database import _describe
    source = DataSource("main", "postgresql", host="h", database="d", user="u",
                        password="s3cr3t-pw")  # noqa: S106
    text = _describe(ValueError("bad conninfo password=s3cr3t-pw host=h\n s3cr3t-pw"), source)
    assert "s3cr3t-pw" not in text and "\n" not in text


def test_agent_toml_is_owner_only_since_it_may_hold_passwords(tmp_path: Path) -> None:
    c.save(tmp_path, c.AgentConfig(id="web-1", trust_domain="example.test"))
    assert stat.S_IMODE((tmp_path / "agent.toml").stat().st_mode) == 0o600
