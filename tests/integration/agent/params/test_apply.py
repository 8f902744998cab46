"""Preview, apply and undo on real files in every format: exactly as previewed, or nothing."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from agent.params import (
    ChangeRejected,
    Drifted,
    ParamPreview,
    UndoRefused,
    UnknownParamFile,
    ValidationFailed,
    apply,
    preview,
    undo,
)
from tests.integration.agent.params.conftest import FAIL, FORMATS, MakeWorld


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.parametrize("fmt", FORMATS)
def test_preview_leaves_the_file_untouched(make_world: MakeWorld, fmt: str) -> None:
    world = make_world(fmt)
    before = _snapshot(world.path)
    shown = preview(world.config, "app", world.sample.changes)
    assert _snapshot(world.path) == before
    assert not (world.backups.root).exists()
    assert shown.name == "app" and shown.format == fmt
    assert "-" in shown.diff and "+" in shown.diff and "9090" in shown.diff
    assert str(world.path) not in shown.diff  # engineers see names, never paths
    assert preview(world.config, "app", world.sample.changes) == shown  # deterministic
    assert ParamPreview.from_dict(shown.to_dict()) == shown


@pytest.mark.parametrize("fmt", FORMATS)
def test_apply_writes_exactly_the_previewed_text(make_world: MakeWorld, fmt: str) -> None:
    world = make_world(fmt)
    shown = preview(world.config, "app", world.sample.changes)
    applied = apply(world.config, shown, world.backups)
    assert world.path.read_text() == world.sample.expected
    assert applied["after_sha256"] == shown.after_sha256
    assert stat.S_IMODE(world.path.stat().st_mode) == 0o640
    backup = Path(applied["backup"])
    assert backup.read_text() == world.sample.text
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.parent.stat().st_mode) == 0o700
    assert not [p for p in world.path.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_drift_between_preview_and_apply_aborts(make_world: MakeWorld, fmt: str) -> None:
    world = make_world(fmt)
    shown = preview(world.config, "app", world.sample.changes)
    drifted = world.sample.text + ("# edited by hand\n" if fmt != "json" else " ")
    world.path.write_text(drifted)
    with pytest.raises(Drifted, match="changed since the preview"):
        apply(world.config, shown, world.backups)
    assert world.path.read_text() == drifted
    assert not world.backups.root.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_failing_validation_restores_the_file(make_world: MakeWorld, fmt: str) -> None:
    world = make_world(fmt, validate=FAIL)
    shown = preview(world.config, "app", world.sample.changes)
    with pytest.raises(ValidationFailed) as failed:
        apply(world.config, shown, world.backups)
    assert world.path.read_text() == world.sample.text
    assert stat.S_IMODE(world.path.stat().st_mode) == 0o640
    assert failed.value.result["exit_code"] == 1
    assert "config test failed: bad port" in failed.value.result["output"]


def test_validation_timeout_restores_and_kills(make_world: MakeWorld, tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    sleeper = [sys.executable, "-c",
               f"import time; time.sleep(5); open({str(marker)!r}, 'w').close()"]
    world = make_world("toml", validate=sleeper, validate_timeout_seconds=0.5)
    with pytest.raises(ValidationFailed) as failed:
        apply(world.config, preview(world.config, "app", {"server.port": 1}), world.backups)
    assert failed.value.result["timed_out"] is True
    assert world.path.read_text() == world.sample.text
    assert not marker.exists()


def test_validation_sees_the_new_file(make_world: MakeWorld, tmp_path: Path) -> None:
    path = tmp_path / "etc" / "app.toml"
    check = [sys.executable, "-c",
             f"import sys; sys.exit(0 if 'port = 9090' in open({str(path)!r}).read() else 3)"]
    world = make_world("toml", validate=check)
    applied = apply(world.config, preview(world.config, "app", {"server.port": 9090}),
                    world.backups)
    assert applied["validation"]["exit_code"] == 0
    assert world.path.read_text() == world.sample.expected


def test_a_missing_validation_program_restores(make_world: MakeWorld) -> None:
    world = make_world("toml", validate=["/nonexistent/validator"])
    with pytest.raises(ValidationFailed, match="restored"):
        apply(world.config, preview(world.config, "app", {"server.port": 1}), world.backups)
    assert world.path.read_text() == world.sample.text


@pytest.mark.parametrize("fmt", FORMATS)
def test_undo_round_trip(make_world: MakeWorld, fmt: str) -> None:
    world = make_world(fmt)
    original = world.path.read_bytes()
    applied = apply(world.config, preview(world.config, "app", world.sample.changes),
                    world.backups)
    undone = undo(world.config, applied, world.backups)
    assert world.path.read_bytes() == original
    assert undone["restored_sha256"] == applied["before_sha256"]
    assert stat.S_IMODE(world.path.stat().st_mode) == 0o640


@pytest.mark.parametrize("fmt", FORMATS)
def test_undo_after_drift_is_refused_with_three_ways(make_world: MakeWorld, fmt: str) -> None:
    world = make_world(fmt)
    applied = apply(world.config, preview(world.config, "app", world.sample.changes),
                    world.backups)
    drifted = world.sample.expected.replace("9090", "7070")
    world.path.write_text(drifted)
    with pytest.raises(UndoRefused) as refused:
        undo(world.config, applied, world.backups)
    assert world.path.read_text() == drifted
    view = refused.value.view
    assert {view["before_sha256"], view["after_sha256"]} == {applied["before_sha256"],
                                                             applied["after_sha256"]}
    assert view["current_sha256"] not in (applied["before_sha256"], applied["after_sha256"])
    assert "+" in view["diff_after_to_current"] and "7070" in view["diff_after_to_current"]
    assert "8080" in view["diff_before_to_current"]


def test_a_tampered_preview_is_refused(make_world: MakeWorld) -> None:
    world = make_world("toml")
    shown = preview(world.config, "app", {"server.port": 9090}).to_dict()
    shown["changes"][0]["new"] = 22
    with pytest.raises(Drifted, match="digest"):
        ParamPreview.from_dict(shown)
    forged = ParamPreview.from_dict(preview(world.config, "app", {"server.port": 9090})
                                    .to_dict())
    forged = ParamPreview(forged.name, forged.format, forged.changes, forged.diff,
                          forged.before_sha256, "0" * 64, forged.digest)
    with pytest.raises(Drifted):
        apply(world.config, forged, world.backups)
    assert world.path.read_text() == world.sample.text


def test_the_backup_must_match_before_undo(make_world: MakeWorld) -> None:
    world = make_world("ini")
    applied = apply(world.config, preview(world.config, "app", {"server.port": 1}),
                    world.backups)
    Path(applied["backup"]).write_text("[server]\nport = 666\n")
    with pytest.raises(Drifted, match="damaged"):
        undo(world.config, applied, world.backups)
    assert "port = 1" in world.path.read_text()


@pytest.mark.parametrize(("changes", "message"), [
    ({"server.secret": 1}, "not an allowlisted key"),
    ({"server.port": "eighty"}, "expected an integer"),
    ({"server.host": 5}, "expected a string"),
    ({}, "no change requested"),
    ({"server.port": 8080}, "leaves the file as it is"),
])
def test_bad_changes_are_refused_and_nothing_moves(make_world: MakeWorld,
                                                   changes: dict[str, object],
                                                   message: str) -> None:
    world = make_world("toml")
    before = _snapshot(world.path)
    with pytest.raises(ChangeRejected, match=message):
        preview(world.config, "app", changes)
    assert _snapshot(world.path) == before


def test_unknown_names_are_refused(make_world: MakeWorld) -> None:
    world = make_world("toml")
    with pytest.raises(UnknownParamFile):
        preview(world.config, "/etc/passwd", {"root": "x"})


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_owner_is_kept(make_world: MakeWorld) -> None:
    world = make_world("kv")
    os.chown(world.path, 65534, 65534)
    applied = apply(world.config, preview(world.config, "app", {"PORT": 1}), world.backups)
    assert (world.path.stat().st_uid, world.path.stat().st_gid) == (65534, 65534)
    undo(world.config, applied, world.backups)
    assert (world.path.stat().st_uid, world.path.stat().st_gid) == (65534, 65534)
