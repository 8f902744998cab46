"""Previewing a parameter change: the exact new text, its diff, and the digest to consent to.

A preview reads the file and nothing else. Its ``digest`` is ``sha256:<hex>`` of the
canonical JSON of ``{"kind": "config.write", "name", "before_sha256", "after_sha256",
"changes"}`` (``changes`` a list of ``{"key", "old", "new"}`` sorted by key): consent to
the digest is consent to one file going from one exact text to another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.params import _files, _lines, _trees
from agent.params._values import Scalar, Values, plain
from agent.params.errors import ChangeRejected, Drifted
from agent.params.policy import ParamFile, ParamsConfig

KIND = "config.write"
MAX_CHANGES = 100


@dataclass(frozen=True)
class Change:
    """One key's value before and after."""

    key: str
    old: Scalar
    new: Scalar

    def to_dict(self) -> dict[str, Scalar]:
        return {"key": self.key, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class ParamPreview:
    """What an apply will do, and the digest the customer signs."""

    name: str
    format: str
    changes: tuple[Change, ...]
    diff: str
    before_sha256: str
    after_sha256: str
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "format": self.format,
                "changes": [c.to_dict() for c in self.changes], "diff": self.diff,
                "before_sha256": self.before_sha256, "after_sha256": self.after_sha256,
                "digest": self.digest}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParamPreview:
        """The preview ``to_dict`` gave; Drifted if its digest does not match its fields."""
        try:
            changes = tuple(Change(c["key"], plain(c["old"]), plain(c["new"]))
                            for c in data["changes"])
            preview = cls(data["name"], data["format"], changes, data["diff"],
                          data["before_sha256"], data["after_sha256"], data["digest"])
        except (KeyError, TypeError, ChangeRejected) as exc:
            raise Drifted("the stored preview is malformed") from exc
        if digest(preview.name, preview.before_sha256, preview.after_sha256, changes) \
                != preview.digest:
            raise Drifted("the stored preview does not match its digest")
        return preview


def preview(config: ParamsConfig, name: str, changes: Mapping[str, Any]) -> ParamPreview:
    """Preview setting ``changes`` (key to new value) in the file called ``name``."""
    file = config.file(name)
    _check_keys(file, changes)
    before = _files.read(file)
    after, old, new = render(file, before.text, changes)
    if after == before.text:
        raise ChangeRejected(f"{name}: the change leaves the file as it is")
    after_sha = _files.sha256(after.encode())
    made = tuple(Change(key, old[key], new[key]) for key in sorted(changes))
    return ParamPreview(name, file.format, made, unified_diff(name, before.text, after),
                        before.sha256, after_sha, digest(name, before.sha256, after_sha, made))


def render(file: ParamFile, text: str, changes: Mapping[str, Any]) -> tuple[str, Values, Values]:
    """The new text, the old values and the new ones as the file holds them; the new text
    is parsed again to prove that it reads back the new values and nothing else moved."""
    ordered = {key: changes[key] for key in sorted(changes)}
    if file.format in ("ini", "kv"):
        after, old, new = _lines.edit(file.format, text, ordered)
        if {key: _lines.read(file.format, after, key) for key in new} != new:
            raise ChangeRejected(f"{file.name}: the edited file does not read back the new values")
        return after, old, new
    after, old, new = _trees.edit(file.format, text, ordered)
    _trees.verify(file.format, text, after, new)
    return after, old, new


def digest(name: str, before_sha256: str, after_sha256: str, changes: tuple[Change, ...]) -> str:
    body = {"kind": KIND, "name": name, "before_sha256": before_sha256,
            "after_sha256": after_sha256,
            "changes": [c.to_dict() for c in sorted(changes, key=lambda c: c.key)]}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def unified_diff(name: str, before: str, after: str) -> str:
    import difflib  # loaded with the first change preview

    return "".join(difflib.unified_diff(before.splitlines(keepends=True),
                                        after.splitlines(keepends=True),
                                        fromfile=f"{name} (before)", tofile=f"{name} (after)"))


def _check_keys(file: ParamFile, changes: Mapping[str, Any]) -> None:
    if not isinstance(changes, Mapping) or not changes:
        raise ChangeRejected("no change requested")
    if len(changes) > MAX_CHANGES:
        raise ChangeRejected(f"at most {MAX_CHANGES} keys may change at once")
    outside = sorted(str(key) for key in changes if key not in file.keys)
    if outside:
        shown = ", ".join(repr(k[:80]) for k in outside[:5])
        raise ChangeRejected(f"{file.name}: not an allowlisted key: {shown}")

