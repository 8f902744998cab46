"""``rmctl bundle verify``: exit 0 intact, 1 integrity failure naming the first bad
member, 3 usage error; ``--json`` for scripts. Offline: no controller is involved."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli import app
from tests.unit.controller.bundle_files import FILES, bundle, manifest_for, regular, write


def run(runner: CliRunner, home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--home", str(home), "bundle", "verify", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_an_intact_bundle_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    path = bundle(tmp_path / "b.tar.gz")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    code, output = run(runner, tmp_path, str(path), "--sha256", f"sha256:{digest}")
    assert code == 0, output
    assert "ok" in output and "C-7" in output and digest in output
    code, output = run(runner, tmp_path, str(path), "--json")
    assert code == 0 and json.loads(output)["status"] == "ok"
    assert json.loads(output)["files"] == 3


def test_an_integrity_failure_exits_1_naming_the_first_bad_member(runner: CliRunner,
                                                                  tmp_path: Path) -> None:
    tampered = dict(FILES, **{"diag/system.json": b'{"hostname": "web-2"}\n'})
    path = write(tmp_path / "t.tar.gz", [
        regular("MANIFEST.json", json.dumps(manifest_for(FILES)).encode()),
        *(regular(n, d) for n, d in tampered.items()),
        regular("../evil", b"x")])
    code, output = run(runner, tmp_path, str(path))
    assert code == 1, output
    assert "FAILED" in output
    assert "first bad member: diag/system.json (sha256-mismatch)" in output
    assert "also: ../evil (unsafe-name)" in output
    code, output = run(runner, tmp_path, str(path), "--json")
    assert code == 1
    problems = json.loads(output)["problems"]
    assert [(p["member"], p["kind"]) for p in problems] == [
        ("diag/system.json", "sha256-mismatch"), ("../evil", "unsafe-name")]
    code, output = run(runner, tmp_path, str(bundle(tmp_path / "g.tar.gz")), "--sha256", "a" * 64)
    assert code == 1 and "(the archive) (sha256-mismatch)" in output


@pytest.mark.parametrize("args", [
    [],                                         # no file
    ["{missing}"],                              # a file that is not there
    ["{bundle}", "--sha256", "1234"],           # not a SHA-256
    ["{bundle}", "--sha256", "g" * 64],
    ["{bundle}", "--no-such-option"],
])
def test_usage_errors_exit_3(runner: CliRunner, tmp_path: Path, args: list[str]) -> None:
    path = bundle(tmp_path / "b.tar.gz")
    args = [a.format(missing=tmp_path / "missing.tar.gz", bundle=path) for a in args]
    code, output = run(runner, tmp_path, *args)
    assert code == 3, output


def test_ok_says_what_was_checked(runner: CliRunner, tmp_path: Path) -> None:
    # A file AND its manifest entry changed: consistent, but not what the agent signed.
    forged_files = dict(FILES, **{"diag/system.json": b'{"hostname": "evil"}\n'})
    path = write(tmp_path / "forged.tar.gz", [
        regular("MANIFEST.json", json.dumps(manifest_for(forged_files)).encode()),
        *(regular(n, d) for n, d in forged_files.items())])
    code, output = run(runner, tmp_path, str(path))
    assert code == 0, output
    assert "consistent with its own manifest; not checked against the hash the agent signed " \
           "(pass --sha256 from 'rmctl bundle list')" in output
    assert "matches the hash the agent signed" not in output
    signed = hashlib.sha256(bundle(tmp_path / "g.tar.gz").read_bytes()).hexdigest()
    code, output = run(runner, tmp_path, str(path), "--sha256", signed)
    assert code == 1 and "first bad member: (the archive) (sha256-mismatch)" in output
    good = tmp_path / "g.tar.gz"
    code, output = run(runner, tmp_path, str(good), "--sha256", signed)
    assert code == 0 and "matches the hash the agent signed" in output
    assert json.loads(run(runner, tmp_path, str(path), "--json")[1])["checked"] == "own-manifest"


def test_the_changed_file_is_named_first(runner: CliRunner, tmp_path: Path) -> None:
    from tests.unit.controller.bundle_files import special

    tampered = dict(FILES, **{"config/etc/app/app.conf": b"listen = 8080\npassword = xyz\n"})
    path = write(tmp_path / "t.tar.gz", [
        regular("MANIFEST.json", json.dumps(manifest_for(FILES)).encode()),
        special("diag", b"5"), *(regular(n, d) for n, d in tampered.items())])
    code, output = run(runner, tmp_path, str(path))
    assert code == 1
    assert "first bad member: config/etc/app/app.conf (sha256-mismatch)" in output
    assert "also: diag (not-a-file)" in output
