"""The [data] section: parse, normal form, and every rule refused with its key named."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from agent.data import policy

SQLITE = {"name": "books", "engine": "sqlite", "path": "/srv/books.db",
          "tables": [{"name": "orders", "columns": ["id", "status", "email"],
                      "masked": ["email"]}]}
PG = {"name": "shop", "engine": "postgresql", "host": "db.internal", "database": "shop",
      "user": "maint", "password": "pw", "tables": []}


def test_parse_and_normal_form_round_trip() -> None:
    config = policy.parse({"sources": [SQLITE, PG | {"engine": "mysql", "name": "m"}]})
    assert config.source("books") is not None and config.source("m") is not None
    assert config.source("m").port == 3306  # type: ignore[union-attr]
    assert policy.parse(policy.to_toml(config)) == config
    assert "pw" not in repr(config)
    table = config.source("books").table("orders")  # type: ignore[union-attr]
    assert table is not None and table.masked == ("email",)


@pytest.mark.parametrize("source,message", [
    (SQLITE | {"engine": "oracle"}, "engine"),
    (SQLITE | {"path": "relative.db"}, "path"),
    (SQLITE | {"row_limit": 1001}, "row_limit"),
    (SQLITE | {"row_limit": 0}, "row_limit"),
    (SQLITE | {"host": "x"}, "unknown key"),
    (SQLITE | {"tables": [{"name": "o; DROP", "columns": ["id"]}]}, "identifier"),
    (SQLITE | {"tables": [{"name": "o", "columns": ["id\"x"]}]}, "identifier"),
    (SQLITE | {"tables": [{"name": "o", "columns": []}]}, "at least one"),
    (SQLITE | {"tables": [{"name": "o", "columns": ["id"], "masked": ["pw"]}]}, "masked"),
    (SQLITE | {"tables": [{"name": "o", "columns": ["id", "id"]}]}, "duplicate"),
    (PG | {"port": 0}, "port"),
    (PG | {"host": ""}, "host"),
])
def test_bad_sources_are_refused(source: dict[str, Any], message: str) -> None:
    with pytest.raises(policy.DataConfigInvalid, match=message):
        policy.parse({"sources": [source]})


def test_duplicate_source_names_are_refused() -> None:
    with pytest.raises(policy.DataConfigInvalid, match="duplicate"):
        policy.parse({"sources": [SQLITE, SQLITE]})


def test_agent_toml_keeps_data_sources_and_refuses_bad_ones(tmp_path: Path) -> None:
    from agent import config as agent_config

    data = policy.parse({"sources": [SQLITE, PG]})
    agent_config.save(tmp_path, agent_config.AgentConfig(id="web-1", trust_domain="example.test",
                                                         data=data))
    assert agent_config.load(tmp_path).data == data
    assert stat.S_IMODE((tmp_path / "agent.toml").stat().st_mode) == 0o600  # holds passwords
    text = (tmp_path / "agent.toml").read_text()
    (tmp_path / "agent.toml").write_text(text.replace('"sqlite"', '"oracle"'))
    with pytest.raises(agent_config.ConfigInvalid, match="engine"):
        agent_config.load(tmp_path)
