"""The offline bundle check: a good bundle passes; each kind of tampering is found and the
first bad member named; unsafe members and bombs are refused without extracting."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.bundle_verify import Limits, manifest_fault, unsafe_name, verify_bundle_file
from tests.unit.controller.bundle_files import (
    FILES,
    Member,
    bundle,
    manifest_for,
    regular,
    special,
    write,
)


def kinds(path: Path, **kwargs: Any) -> list[tuple[str | None, str]]:
    report = verify_bundle_file(path, **kwargs)
    return [(p.member, p.kind) for p in report.problems]


def test_a_good_bundle_passes_with_and_without_its_hash(tmp_path: Path) -> None:
    path = bundle(tmp_path / "b.tar.gz")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    report = verify_bundle_file(path, digest.upper())
    assert report.ok and report.first is None
    assert report.files_checked == 3 and report.sha256 == digest
    assert report.manifest is not None and report.manifest["case_id"] == "C-7"
    assert report.to_json()["status"] == "ok"
    assert verify_bundle_file(path).ok


def test_the_archive_hash_must_match_when_given(tmp_path: Path) -> None:
    path = bundle(tmp_path / "b.tar.gz")
    assert kinds(path, expected_sha256="0" * 64) == [(None, "sha256-mismatch")]
    with pytest.raises(ValueError, match="64 hexadecimal"):
        verify_bundle_file(path, "abc")


def test_a_tampered_member_is_pinpointed(tmp_path: Path) -> None:
    files = dict(FILES)
    tampered = dict(files, **{"config/etc/app/app.conf": b"listen = 8080\npassword = abc\n"})
    # Same size, other bytes: the manifest still describes the original.
    manifest = manifest_for(files)
    path = write(tmp_path / "t.tar.gz", [regular("MANIFEST.json", json.dumps(manifest).encode()),
                                         *(regular(n, d) for n, d in tampered.items())])
    report = verify_bundle_file(path)
    assert not report.ok and report.first is not None
    assert (report.first.member, report.first.kind) == ("config/etc/app/app.conf",
                                                        "sha256-mismatch")
    assert report.files_checked == 2


def test_an_added_member_is_found(tmp_path: Path) -> None:
    path = bundle(tmp_path / "b.tar.gz", after=[regular("config/etc/extra.conf", b"x=1\n")])
    assert kinds(path) == [("config/etc/extra.conf", "extra")]


def test_a_removed_member_is_found(tmp_path: Path) -> None:
    path = bundle(tmp_path / "b.tar.gz", skip="logs/var/log/app.log")
    assert kinds(path) == [("logs/var/log/app.log", "missing")]


def test_a_manifest_edit_is_found(tmp_path: Path) -> None:
    def wrong_size(manifest: dict[str, Any]) -> None:
        manifest["files"][0]["size"] += 1

    def other_hash(manifest: dict[str, Any]) -> None:
        manifest["files"][2]["sha256"] = "f" * 64

    assert kinds(bundle(tmp_path / "a.tar.gz", edit=wrong_size)) == \
        [("diag/system.json", "size-mismatch")]
    assert kinds(bundle(tmp_path / "b.tar.gz", edit=other_hash)) == \
        [("logs/var/log/app.log", "sha256-mismatch")]
    # An edit that every member survives (another case) changes the archive's hash.
    good = bundle(tmp_path / "c.tar.gz")
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    moved = bundle(tmp_path / "d.tar.gz", edit=lambda m: m.update(case_id="C-8"))
    assert kinds(moved, expected_sha256=digest) == [(None, "sha256-mismatch")]


@pytest.mark.parametrize(("edit", "fault"), [
    (lambda m: m.update(format="rmaint-bundle/2"), "format"),
    (lambda m: m.pop("agent_id"), "agent_id"),
    (lambda m: m.update(created_at="yesterday"), "created_at"),
    (lambda m: m["files"][0].update(sha256="xyz"), "sha256"),
    (lambda m: m["files"][1].update(size=-1), "size"),
    (lambda m: m["files"][1].update(path="../etc/passwd"), "'..'"),
    (lambda m: m["files"].append(dict(m["files"][0])), "listed twice"),
    (lambda m: m.update(created_at=float("nan")), "NaN is not a JSON number"),
    (lambda m: m["files"][1].update(path="logs/\ud800.txt"), "not JSON"),
])
def test_a_malformed_manifest_is_refused(tmp_path: Path, edit: Callable[[dict[str, Any]], Any],
                                         fault: str) -> None:
    report = verify_bundle_file(bundle(tmp_path / "b.tar.gz", edit=edit))
    assert report.first is not None
    assert (report.first.member, report.first.kind) == ("MANIFEST.json", "manifest-invalid")
    assert fault in report.first.message


def test_the_manifest_must_come_first(tmp_path: Path) -> None:
    members = [regular(n, d) for n, d in FILES.items()]
    path = write(tmp_path / "b.tar.gz", [*members, regular("MANIFEST.json",
                                                           json.dumps(manifest_for(FILES)).encode())])
    assert kinds(path) == [("diag/system.json", "manifest-not-first")]


@pytest.mark.parametrize(("member", "kind"), [
    (regular("../../etc/cron.d/evil", b"x"), "unsafe-name"),
    (regular("/etc/cron.d/evil", b"x"), "unsafe-name"),
    (regular("config/./app.conf", b"x"), "unsafe-name"),
    (special("config/link", tarfile.SYMTYPE, "/etc/shadow"), "not-a-file"),
    (special("config/hard", tarfile.LNKTYPE, "diag/system.json"), "not-a-file"),
    (special("config/tty", tarfile.CHRTYPE), "not-a-file"),
    (special("config/fifo", tarfile.FIFOTYPE), "not-a-file"),
    (special("config/dir", tarfile.DIRTYPE), "not-a-file"),
])
def test_unsafe_members_are_pinpointed(tmp_path: Path, member: Member, kind: str) -> None:
    path = bundle(tmp_path / "b.tar.gz", after=[member])
    assert kinds(path) == [(member[0].name, kind)]


def test_a_member_twice_is_found(tmp_path: Path) -> None:
    path = bundle(tmp_path / "b.tar.gz", after=[regular("diag/system.json",
                                                        FILES["diag/system.json"])])
    assert kinds(path) == [("diag/system.json", "duplicate")]


def test_bombs_and_junk_are_refused(tmp_path: Path) -> None:
    zeros = {"logs/var/log/zeros.log": bytes(8 * 1024 * 1024)}
    path = bundle(tmp_path / "bomb.tar.gz", files=zeros)
    assert path.stat().st_size < 64 * 1024
    ratio = Limits(ratio_floor=1024 * 1024, max_ratio=50)
    assert [p.kind for p in verify_bundle_file(path, limits=ratio).problems] == ["bomb"]
    total = Limits(max_unpacked_bytes=4 * 1024 * 1024)
    assert [p.kind for p in verify_bundle_file(path, limits=total).problems] == ["bomb"]
    assert verify_bundle_file(path).ok  # within the default limits it is a fine bundle
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a bundle at all")
    assert kinds(junk) == [(None, "corrupt")]
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(bundle(tmp_path / "whole.tar.gz").read_bytes()[:-40])
    assert [k for _, k in kinds(cut)] == ["corrupt"]


def test_trailing_data_after_the_archive_is_found(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, data in [regular("MANIFEST.json", json.dumps(manifest_for(FILES)).encode()),
                           *(regular(n, d) for n, d in FILES.items())]:
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "b.tar.gz"
    path.write_bytes(gzip.compress(raw.getvalue() + b"hidden extra bytes" * 1000))
    assert kinds(path) == [(None, "trailing-data")]


def test_names_and_manifests_judged_alone() -> None:
    assert unsafe_name("diag/system.json") is None
    for bad in ("", "a//b", "a/../b", "/abs", "a\\b", "a/./b", "dir/"):
        assert unsafe_name(bad) is not None, bad
    assert manifest_fault(manifest_for(FILES)) is None
    assert manifest_fault([]) == "not a JSON object"


def _tar_end(path: Path) -> bytes:
    """The unpacked tar of ``path`` cut where its last member ends (before the end blocks)."""
    raw = gzip.decompress(path.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        tar.getmembers()
        return raw[:tar.offset]


def test_a_member_hidden_behind_a_lone_zero_block_is_refused(tmp_path: Path) -> None:
    body = _tar_end(bundle(tmp_path / "good.tar.gz"))
    hidden = io.BytesIO()
    with tarfile.open(fileobj=hidden, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info, data = regular("evil.sh", b"echo pwned\n")
        tar.addfile(info, io.BytesIO(data))
    # tarfile stops at the zero block; `tar --ignore-zeros` would extract evil.sh.
    forged = tmp_path / "hidden.tar.gz"
    forged.write_bytes(gzip.compress(body + b"\0" * 512 + hidden.getvalue()))
    assert kinds(forged) == [(None, "trailing-data")]
    garbage = tmp_path / "garbage.tar.gz"  # a block that is no header, then the end blocks
    garbage.write_bytes(gzip.compress(body + b"X" * 512 + b"\0" * 1024))
    assert kinds(garbage) == [(None, "trailing-data")]
    late = tmp_path / "late.tar.gz"  # garbage far past tarfile's read-ahead
    late.write_bytes(gzip.compress(body + b"\0" * 300_000 + b"X" + b"\0" * 1023))
    assert kinds(late) == [(None, "trailing-data")]
    short = tmp_path / "short.tar.gz"  # one end block only
    short.write_bytes(gzip.compress(body + b"\0" * 512))
    assert kinds(short) == [(None, "truncated")]
    padded = tmp_path / "padded.tar.gz"  # any number of zero blocks is fine
    padded.write_bytes(gzip.compress(body + b"\0" * 300_000))
    assert kinds(padded) == []


def test_manifest_paths_that_differ_only_by_case_are_refused() -> None:
    manifest = manifest_for({"config/App.conf": b"a", "config/app.conf": b"b"})
    fault = manifest_fault(manifest)
    assert fault is not None and "only by case" in fault


def test_a_changed_file_is_named_before_directory_entries(tmp_path: Path) -> None:
    # As `tar czf` of an unpacked tree makes it: directory entries before the files.
    tampered = dict(FILES, **{"logs/var/log/app.log": b"request 1 ok\nrequest 2 OK\n"})
    path = write(tmp_path / "t.tar.gz", [
        regular("MANIFEST.json", json.dumps(manifest_for(FILES)).encode()),
        special("diag", tarfile.DIRTYPE), special("config", tarfile.DIRTYPE),
        *(regular(n, d) for n, d in tampered.items())])
    digest = hashlib.sha256(bundle(tmp_path / "g.tar.gz").read_bytes()).hexdigest()
    report = verify_bundle_file(path, digest)
    assert [(p.member, p.kind) for p in report.problems] == [
        ("logs/var/log/app.log", "sha256-mismatch"), (None, "sha256-mismatch"),
        ("diag", "not-a-file"), ("config", "not-a-file")]
    assert report.first is not None and report.first.member == "logs/var/log/app.log"
    assert report.signed_hash_checked and report.to_json()["checked"] == "signed-hash"


def test_an_empty_archive_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tar.gz"
    empty.write_bytes(gzip.compress(b"\0" * 10240))
    assert kinds(empty) == [("MANIFEST.json", "manifest-not-first")]
