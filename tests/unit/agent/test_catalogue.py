"""Operation parameters are validated strictly; the catalogue names each scope."""

from __future__ import annotations

from typing import Any

import pytest

from agent.catalogue import CATALOGUE, scope_of
from agent.diag.processes import ProcessQuery
from agent.diag.processes import parse_processes as parse_process_query
from agent.errors import InvalidParams

SCOPES = {
    "diag.system": "diag.read", "diag.cpu": "diag.read", "diag.memory": "diag.read",
    "diag.disks": "diag.read", "diag.network": "diag.read", "diag.processes": "diag.read",
    "diag.process": "diag.read", "diag.services": "diag.read", "diag.clock": "diag.read",
    "diag.connect": "diag.read", "diag.database": "diag.read", "logs.tail": "diag.logs",
    "logs.search": "diag.logs",
    "files.stat": "diag.files", "files.hash": "diag.files",
    "bundle.create": "diag.read", "diag.watch": "diag.read",
    # Offered by every agent; without data sources they refuse, saying so.
    "data.describe": "data.read", "data.query": "data.read", "data.preview": "data.write",
    "data.apply": "data.write", "data.undo": "data.write",
}


def test_catalogue_declares_scope_and_limits() -> None:
    assert {name: spec.scope for name, spec in CATALOGUE.items()} == SCOPES
    for spec in CATALOGUE.values():
        assert spec.writes == (spec.name == "data.apply")
        # The controller waits 30 s for a result; a stream reports as it goes.
        assert 0 < spec.deadline and (spec.streams or spec.deadline <= 25)
        assert spec.output_limit > 0
    assert scope_of("diag.system") == "diag.read"
    assert scope_of("logs.tail") == "diag.logs"
    assert scope_of("shell.exec") is None


def test_process_query_defaults_and_values() -> None:
    assert parse_process_query({}) == ProcessQuery("cpu", 10, 0.5)
    assert parse_process_query({"by": "memory", "limit": 100, "interval": 0}) == \
        ProcessQuery("memory", 100, 0.0)
    assert parse_process_query({"interval": 10}).interval == 10.0


@pytest.mark.parametrize("params", [
    {"by": "disk"}, {"by": 1}, {"limit": 0}, {"limit": 101}, {"limit": True}, {"limit": "5"},
    {"limit": 2.0}, {"interval": -0.1}, {"interval": 10.5}, {"interval": float("nan")},
    {"interval": False}, {"interval": "1"}, {"sort": "cpu"},
])
def test_process_query_rejects(params: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams, match=r"^diag\.processes: "):
        parse_process_query(params)


@pytest.mark.parametrize("name", ["diag.system", "diag.disks", "diag.memory", "diag.network"])
def test_operations_without_parameters_reject_any(name: str) -> None:
    with pytest.raises(InvalidParams, match="takes no parameters"):
        CATALOGUE[name].prepare({"verbose": True})
    assert callable(CATALOGUE[name].prepare({}))


async def test_operations_return_json_ready_values() -> None:
    system = await CATALOGUE["diag.system"].prepare({})()
    assert system["cpu"]["logical"] >= 1 and system["memory"]["total"] > 0
    assert isinstance(system["users"], list)
    disks = await CATALOGUE["diag.disks"].prepare({})()
    assert all(fs["fstype"] not in ("proc", "sysfs", "tmpfs") for fs in disks["filesystems"])
    top = await CATALOGUE["diag.processes"].prepare({"by": "memory", "limit": 3,
                                                     "interval": 0})()
    assert len(top["processes"]) <= 3 and top["by"] == "memory"
    rss = [p["memory_rss_bytes"] or 0 for p in top["processes"]]
    assert rss == sorted(rss, reverse=True)
    assert {"pid", "name", "user", "cpu_percent", "memory_percent", "status", "cmdline"} <= \
        set(top["processes"][0])


def test_data_operations_without_data_sources_say_so() -> None:
    from agent.context import OperationContext
    from agent.errors import InvalidParams
    context = OperationContext(agent_id="web-1", grant_id="G-1", case_id="C-1", session_id="S-1",
                               seq=1, engineer="alice", engineer_key_id="sha256:" + "0" * 64)
    with pytest.raises(InvalidParams, match="no data sources are configured on this agent"):
        CATALOGUE["data.query"].runner({"source": "shop"}, context)
