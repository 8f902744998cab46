"""The architecture's arrows: agent and controller never import each other; the trust
kernel imports neither, nor grpc, nor the wire or PKI layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "permissions": {"agent", "controller", "grpc", "rmaint", "pki", "sqlalchemy", "psutil"},
    "pki": {"agent", "controller"},
    "tlog": {"agent", "controller", "grpc", "rmaint", "pki", "sqlalchemy", "psutil"},
    "agent": {"controller"},
    "controller": {"agent"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in imported_roots(path) & FORBIDDEN[package]
    }
    assert not wrong, sorted(wrong)


def test_checker_sees_a_wrong_arrow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import grpc\nfrom controller.server import run\n")
    assert {"grpc", "controller"} <= imported_roots(bad)
