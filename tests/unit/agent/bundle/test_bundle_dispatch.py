"""bundle.create through the real dispatcher (signed operation, grant, log, receipt): the
receipt binds the archive's hash, and a revocation mid-stream stops it and frees its file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time

import pytest

import permissions as p
from agent.bundle.operation import BundleSettings
from agent.catalogue import OperationSpec, build_catalogue
from agent.errors import Cancelled, InvalidParams, Refused
from tests.unit.agent.bundle.conftest import (
    SNAPSHOT,
    Collector,
    World,
    manifest_of,
    members,
    spool_descriptors,
)
from tests.unit.agent.conftest import RigFactory
from tests.unit.agent.conftest import World as Grants

ALL = ("diag.read", "diag.logs", "diag.files")  # a grant that may read everything a bundle holds


def bundle_catalogue(world: World) -> dict[str, OperationSpec]:
    settings = BundleSettings(home=world.home, clock=lambda: SNAPSHOT, configs=True)
    return {"bundle.create": build_catalogue(world.diag(), bundle=settings)["bundle.create"]}


async def test_the_receipt_binds_the_streamed_archive(make_rig: RigFactory, world: World) -> None:
    rig = make_rig(world=Grants(scopes=ALL), extra=bundle_catalogue(world))
    parts = Collector()
    done = await rig.dispatcher.execute_stream(
        rig.world.op(operation="bundle.create", params={"include": ["configs", "logs"]}),
        parts)
    result = json.loads(done.result_json)
    digest = hashlib.sha256(parts.data).hexdigest()
    assert result["stream"] == {"parts": len(parts.parts), "bytes": len(parts.data),
                                "sha256": digest}
    assert result["bundle"]["sha256"] == digest
    assert manifest_of(parts.data)["case_id"] == "C-1"  # the grant's case, not a parameter
    agent_key = rig.agent_key.public_key()
    receipt = p.verify(done.receipt, p.RECEIPT, {p.key_id(agent_key): agent_key})
    assert json.loads(receipt)["result_digest"] == \
        "sha256:" + hashlib.sha256(done.result_json).hexdigest()
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == [("attempt", "allowed"),
                                                                ("result", "ok")]
    with pytest.raises(InvalidParams, match="ExecuteStream"):
        await rig.dispatcher.execute(rig.world.op(2, "bundle.create"))


async def test_a_revocation_mid_stream_cancels_and_frees_the_archive(
        make_rig: RigFactory, world: World) -> None:
    for name in ("a.conf", "b.conf"):  # near-incompressible: more than one part
        (world.conf / name).write_bytes(base64.encodebytes(os.urandom(700_000)))
    rig = make_rig(world=Grants(scopes=ALL), extra=bundle_catalogue(world))
    first_part = asyncio.Event()

    async def slow_reader(part: bytes) -> None:
        first_part.set()
        await asyncio.Event().wait()

    running = asyncio.create_task(rig.dispatcher.execute_stream(
        rig.world.op(operation="bundle.create", params={"include": ["configs"]}), slow_reader))
    await asyncio.wait_for(first_part.wait(), 10)
    assert spool_descriptors(world.spool)
    started = time.monotonic()
    await rig.dispatcher.revoke(rig.world.revocation())
    with pytest.raises(Cancelled):
        await running
    assert time.monotonic() - started < 1.0
    assert spool_descriptors(world.spool) == [] and os.listdir(world.spool) == []
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == [("attempt", "allowed"),
                                                                ("result", "cancelled")]


async def test_a_diag_read_grant_gets_neither_logs_nor_configuration_files(
        make_rig: RigFactory, world: World) -> None:
    rig = make_rig(extra=bundle_catalogue(world))  # the grant holds diag.read alone
    parts = Collector()
    with pytest.raises(Refused) as refused:
        await rig.dispatcher.execute_stream(
            rig.world.op(operation="bundle.create", params={"include": ["configs", "logs"]}),
            parts)
    assert refused.value.reason == "scope-not-granted" and parts.parts == []
    assert "diag.logs" in refused.value.detail and "diag.files" in refused.value.detail
    assert [(e.kind, e.outcome) for e in rig.log.entries()] == [("attempt", "allowed"),
                                                                ("result", "denied")]
    # Without include: what the grant allows, and the manifest says what was withheld.
    done = await rig.dispatcher.execute_stream(rig.world.op(2, "bundle.create"), parts)
    assert json.loads(done.result_json)["bundle"]["withheld"] == ["configs", "logs"]
    got = members(parts.data)
    assert not any(n.startswith(("config/", "logs/", "journal/")) for n in got)
    assert not any(b"hunter2" in data or b"request 49" in data for data in got.values())
    manifest = manifest_of(parts.data)
    assert {w["section"] for w in manifest["sections_withheld"]} == {"configs", "logs"}
    assert "configs" not in manifest["sections"] and "logs" not in manifest["sections"]


async def test_configuration_files_need_the_customers_opt_in_as_well_as_diag_files(
        make_rig: RigFactory, world: World) -> None:
    settings = BundleSettings(home=world.home, clock=lambda: SNAPSHOT)  # configs off
    catalogue = {"bundle.create": build_catalogue(world.diag(), bundle=settings)["bundle.create"]}
    rig = make_rig(world=Grants(scopes=ALL), extra=catalogue)
    with pytest.raises(Refused, match=r"agent\.toml"):
        await rig.dispatcher.execute_stream(
            rig.world.op(operation="bundle.create", params={"include": ["configs"]}), Collector())
    parts = Collector()
    await rig.dispatcher.execute_stream(rig.world.op(2, "bundle.create"), parts)
    got = members(parts.data)
    assert any(n.startswith("logs/") for n in got)  # diag.logs is held
    assert not any(n.startswith("config/") for n in got)
    assert [w["section"] for w in manifest_of(parts.data)["sections_withheld"]] == ["configs"]
