"""bundle.create on real files and real readings, driven through its stream runner with an
``emit`` that collects the parts (the dispatcher's contract): what goes in, redacted and
listed; what is refused; the size limit; the archive's form; nothing left on disk."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from agent.bundle import policy
from agent.bundle.collect import Stopped
from agent.bundle.operation import BundleSettings, Handoff
from agent.catalogue import build_catalogue
from agent.context import OperationContext
from agent.diag.policy import DiagConfig
from agent.errors import InvalidParams
from controller.bundle_verify import verify_bundle_file
from tests.unit.agent.bundle.conftest import (
    CONTEXT,
    SNAPSHOT,
    Collector,
    Emit,
    World,
    manifest_of,
    members,
    spool_descriptors,
)


async def create(world: World, params: dict[str, Any], *, diag: DiagConfig | None = None,
                 max_bytes: int = policy.DEFAULT_MAX_BYTES,
                 emit: Emit | None = None, configs: bool = True,
                 context: OperationContext = CONTEXT) -> tuple[dict[str, Any], bytes]:
    settings = BundleSettings(home=world.home, max_bytes=max_bytes, clock=lambda: SNAPSHOT,
                              configs=configs)
    spec = build_catalogue(diag or world.diag(), bundle=settings)["bundle.create"]
    assert spec.prepare_stream is not None and spec.streams
    collector = Collector()
    summary = await spec.prepare_stream(params, context)(emit or collector)
    return summary, collector.data


async def test_bundle_holds_readings_configs_and_logs_redacted_manifest_first(
        world: World, tmp_path: Path) -> None:
    summary, data = await create(world, {})
    files = members(data)
    names = list(files)
    assert names[0] == "MANIFEST.json"
    assert names[1:9] == [f"diag/{s}.json" for s in ("system", "cpu", "memory", "disks",
                                                     "network", "processes", "services",
                                                     "clock")]
    conf, log = f"config{world.conf}/app.conf", f"logs{world.log}"
    assert {conf, f"config{world.conf}/conf.d/db.conf", log} <= set(names)
    assert json.loads(files["diag/system.json"])["cpu"]["logical"] >= 1  # a real reading

    manifest = json.loads(files["MANIFEST.json"])
    assert manifest["format"] == "rmaint-bundle/1"
    assert (manifest["agent_id"], manifest["case_id"], manifest["created_at"]) == \
        ("web-1", "C-7", SNAPSHOT)
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert list(listed) == names[1:]
    for name, entry in listed.items():
        assert entry["size"] == len(files[name])
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest()
    # Redacted on the agent, and counted per file.
    assert files[conf] == b"listen = 8080\npassword = ***\n" and listed[conf]["redactions"] == 1
    assert listed[conf]["source"] == str(world.conf / "app.conf")
    assert listed[f"config{world.conf}/conf.d/db.conf"]["redactions"] == 1
    assert files[log].endswith(b"login token: ***\nticket *** opened\n")
    assert listed[log]["redactions"] == 2 and listed[log]["source"] == str(world.log)
    for secret in (b"hunter2", b"s3cret", b"abc123def", b"ACME-12345678", b"TOPSECRET"):
        assert secret not in data and all(secret not in body for body in files.values())

    bundle = summary["bundle"]
    assert manifest["sections_withheld"] == [] and bundle["withheld"] == []  # all allowed
    assert bundle["files"] == len(names) - 1
    assert bundle["redactions"] == sum(e["redactions"] for e in listed.values()) >= 4
    assert bundle["manifest_sha256"] == hashlib.sha256(files["MANIFEST.json"]).hexdigest()
    assert bundle["sha256"] == hashlib.sha256(data).hexdigest() and bundle["bytes"] == len(data)
    # The controller's offline check agrees, against the hash the summary carries.
    saved = tmp_path / "bundle.tar.gz"
    saved.write_bytes(data)
    report = verify_bundle_file(saved, bundle["sha256"])
    assert report.ok, report.problems
    assert report.files_checked == bundle["files"]
    assert os.listdir(world.spool) == [] and spool_descriptors(world.spool) == []


async def test_members_are_plain_files_with_fixed_times_and_the_archive_is_deterministic(
        world: World) -> None:
    params = {"include": ["configs", "logs"]}
    first = (await create(world, params))[1]
    assert first == (await create(world, params))[1]
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        for member in tar:
            assert member.isreg() and member.mtime == int(SNAPSHOT) and member.mode == 0o644
            assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
            assert not member.name.startswith("/") and ".." not in member.name.split("/")


async def test_paths_leading_outside_the_allowlist_and_odd_files_are_listed_not_read(
        world: World) -> None:
    _, data = await create(world, {"include": ["configs", "logs"]})
    manifest = manifest_of(data)
    errors = {e["source"]: e["error"] for e in manifest["errors"]}
    conf = world.conf
    assert errors == {
        str(conf / "escape.conf"): "outside-allowlist",   # a link whose target is outside
        str(conf / "linked-dir"): "symlink",              # a linked directory is not entered
        str(conf / "pipe"): "special-file",
        str(conf / "blob.bin"): "binary",
        str(world.root / "linked.log"): "symlink",        # an allowlisted log that is a link
    }
    listed = {e["path"] for e in manifest["files"]}
    assert listed == {f"config{conf}/app.conf", f"config{conf}/conf.d/db.conf",
                      f"logs{world.log}"}
    assert b"TOPSECRET" not in data and b"ELF" not in data


async def test_a_config_file_over_the_size_bound_is_refused(world: World) -> None:
    (world.conf / "huge.conf").write_bytes(b"x = 1\n" * (1024 * 1024 // 6 + 1))
    _, data = await create(world, {"include": ["configs"]})
    errors = {e["source"]: e["error"] for e in manifest_of(data)["errors"]}
    assert errors[str(world.conf / "huge.conf")] == "too-large"


async def test_over_the_size_limit_logs_are_cut_first_and_the_manifest_says_so(
        world: World, tmp_path: Path) -> None:
    world.log.write_text("".join(f"line {i:05d} " + "x" * 190 + "\n" for i in range(5000)))
    limit = 200 * 1024
    summary, data = await create(world, {"include": ["configs", "logs"]}, max_bytes=limit)
    assert len(data) <= limit
    files, manifest = members(data), manifest_of(data)
    # Configuration files are whole; the log keeps its newest lines, and says how many went.
    assert files[f"config{world.conf}/app.conf"] == b"listen = 8080\npassword = ***\n"
    log = files[f"logs{world.log}"]
    assert log.endswith(b"line 04999 " + b"x" * 190 + b"\n")
    assert 0 < log.count(b"\n") < 1000 and not log.startswith(b"line 04000 ")
    entry = next(e for e in manifest["files"] if e["path"] == f"logs{world.log}")
    assert entry["cut"] == {"reason": "size-limit", "lines_dropped": 1000 - log.count(b"\n")}
    assert manifest["size_limit"]["reached"] and manifest["size_limit"]["max_bytes"] == limit
    assert manifest["size_limit"]["cut"] == [{"source": str(world.log),
                                              "lines_dropped": entry["cut"]["lines_dropped"]}]
    assert summary["bundle"]["cut"] is True

    # Tighter still: the log is left out entirely, the archive still whole and verifiable.
    limit = 36 * 1024
    _, data = await create(world, {"include": ["configs", "logs"]}, max_bytes=limit)
    manifest = manifest_of(data)
    assert len(data) <= limit
    assert f"logs{world.log}" not in {e["path"] for e in manifest["files"]}
    assert {"source": str(world.log), "lines_dropped": 1000, "left_out": True} in \
        manifest["size_limit"]["cut"]
    saved = tmp_path / "small.tar.gz"
    saved.write_bytes(data)
    assert verify_bundle_file(saved).ok


async def test_cancel_while_streaming_leaves_no_temporary_file(world: World) -> None:
    # Two near-incompressible files: an archive of more than one part.
    for name in ("a.conf", "b.conf"):
        (world.conf / name).write_bytes(base64.encodebytes(os.urandom(700_000)))
    first_part = asyncio.Event()

    async def stall(part: bytes) -> None:
        first_part.set()
        await asyncio.Event().wait()  # the engineer's side stops reading

    task = asyncio.create_task(create(world, {"include": ["configs"]}, emit=stall))
    await asyncio.wait_for(first_part.wait(), 10)
    assert spool_descriptors(world.spool), "the archive is open while it streams"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert spool_descriptors(world.spool) == []
    assert os.listdir(world.spool) == []


def test_a_worker_finishing_after_the_run_ended_closes_the_archive(tmp_path: Path) -> None:
    handoff = Handoff()
    handoff.end()  # the run was cancelled
    with open(tmp_path / "archive", "wb") as file:
        with pytest.raises(Stopped):
            handoff.deliver(file)
        assert file.closed


def test_a_delivered_archive_not_taken_is_closed_when_the_run_ends(tmp_path: Path) -> None:
    handoff = Handoff()
    with open(tmp_path / "archive", "wb") as file:
        handoff.deliver(file)
        handoff.end()
        assert file.closed


@pytest.mark.parametrize(("params", "named"), [
    ({"include": []}, "include"), ({"include": ["system", "system"]}, "include"),
    ({"include": ["shadow"]}, "include"), ({"include": "system"}, "include"),
    ({"logs_lines": 0}, "logs_lines"), ({"logs_lines": 10_001}, "logs_lines"),
    ({"logs_lines": True}, "logs_lines"), ({"paths": ["/etc"]}, "unknown parameter"),
])
def test_parameters_are_checked_before_anything_runs(world: World, params: dict[str, Any],
                                                     named: str) -> None:
    spec = build_catalogue(world.diag(), bundle=BundleSettings(home=world.home))["bundle.create"]
    assert spec.prepare_stream is not None
    with pytest.raises(InvalidParams, match=rf"^bundle\.create: .*{named}"):
        spec.prepare_stream(params, CONTEXT)
    with pytest.raises(InvalidParams, match="streams"):
        spec.prepare({})  # not through the unary path
    assert not world.spool.exists()  # nothing was staged


def test_the_bundle_section_of_agent_toml() -> None:
    assert policy.parse({}) == policy.BundleConfig(64 * 1024 * 1024)
    assert policy.parse({"max_bytes": 8 * 1024 * 1024}).max_bytes == 8 * 1024 * 1024
    assert policy.to_toml(policy.parse({})) == {}
    assert policy.parse({}).configs is False  # nothing under file_roots is copied by default
    assert policy.parse({"configs": True}).configs is True
    assert policy.to_toml(policy.parse({"configs": True})) == {"configs": True}
    for bad in ({"max_bytes": 1}, {"max_bytes": True}, {"max_bytes": "64M"},
                {"max_bytes": 2 * 1024**3}, {"limit": 1}, {"configs": "yes"}, {"configs": 1}):
        with pytest.raises(policy.BundleConfigInvalid, match=r"bundle"):
            policy.parse(bad)


def test_agent_toml_carries_the_bundle_section(tmp_path: Path) -> None:
    from agent import config as c

    c.save(tmp_path, c.AgentConfig(id="web-1", trust_domain="example.test",
                                   bundle=policy.BundleConfig(8 * 1024 * 1024)))
    assert c.load(tmp_path).bundle.max_bytes == 8 * 1024 * 1024
    assert c.load(tmp_path).bundle.configs is False
    assert "[bundle]" in (tmp_path / "agent.toml").read_text()
    (tmp_path / "agent.toml").write_text(
        (tmp_path / "agent.toml").read_text().replace("8388608", "12"))
    with pytest.raises(c.ConfigInvalid, match=r"bundle\.max_bytes"):
        c.load(tmp_path)


async def test_journald_units_go_under_journal_without_backslashes(world: World,
                                                                   tmp_path: Path) -> None:
    unit = "systemd-fsck@dev-disk-by\\x2duuid.service"
    _, data = await create(world, {"include": ["logs"]},
                           diag=world.diag(journald_units=[unit], log_files=[]))
    manifest = manifest_of(data)
    # journalctl may or may not know the unit here: either way it is accounted for.
    names = [e["path"] for e in manifest["files"]] + [e["source"] for e in manifest["errors"]]
    assert names in (["logs/journal/systemd-fsck@dev-disk-by%5Cx2duuid.service.log"], [unit])
    assert all("\\" not in name for name in members(data))
    saved = tmp_path / "units.tar.gz"
    saved.write_bytes(data)
    assert verify_bundle_file(saved).ok
