"""The package's surface: what it exports, what it imports, and one error tree."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import tlog

PACKAGE = Path(tlog.__file__).parent
ALLOWED_IMPORTS = {"__future__", "base64", "binascii", "collections", "dataclasses", "hashlib", "re",
                   "typing", "cryptography", "tlog"}


def test_every_export_exists_and_is_public() -> None:
    assert sorted(tlog.__all__) == sorted(set(tlog.__all__))
    for name in tlog.__all__:
        assert not name.startswith("_") and hasattr(tlog, name)


def test_pure_imports_only() -> None:
    # No I/O, no clock, no rmaint package: stdlib hashing and text, and cryptography for Ed25519.
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] in ALLOWED_IMPORTS, f"{path.name} imports {name}"


def test_every_error_is_a_tlog_error_drawn_in_the_tree() -> None:
    errors = [obj for obj in vars(tlog).values() if inspect.isclass(obj) and issubclass(obj, Exception)]
    drawn = sys.modules["tlog._errors"].__doc__ or ""
    for error in errors:
        assert issubclass(error, tlog.TlogError)
        assert error.__name__ in drawn
