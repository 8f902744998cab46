"""Applying a previewed parameter change exactly as previewed, and undoing it.

``apply`` re-reads the file and changes nothing unless it is still the text the preview
saw and the change still gives the previewed text. It keeps a backup (0600, fsynced),
replaces the file atomically, runs the validation command if the policy names one and,
when that fails or overruns, puts the backup back. ``undo`` restores the backup only
while the file is exactly the applied text; otherwise it refuses and shows the three
ways (before, after, current).
"""

from __future__ import annotations

from typing import Any

from agent.params import _files, _validate
from agent.params._preview import ParamPreview, digest, render, unified_diff
from agent.params.backups import Backups
from agent.params.errors import Drifted, UndoRefused, ValidationFailed
from agent.params.policy import ParamFile, ParamsConfig


def apply(config: ParamsConfig, preview: ParamPreview, backups: Backups) -> dict[str, Any]:
    """Make the previewed change; the applied record ``undo`` takes back."""
    file = config.file(preview.name)
    before = _checked_before(file, preview)
    backup = backups.save(file, preview.digest, before.data)
    _files.crash_point("apply:backup-saved")
    _files.replace(file.path, _after_bytes(file, before, preview), before.status, label="apply")
    validation = _validate.run(file.validate, file.validate_timeout) if file.validate else None
    if validation is not None and not _validate.passed(validation):
        _files.crash_point("apply:validation-failed")
        _files.replace(file.path, before.data, before.status, label="restore")
        raise ValidationFailed(f"{file.name}: the validation command failed; the previous "
                               "content is restored", validation)
    current = _files.read(file)
    if current.sha256 != preview.after_sha256:
        raise Drifted(f"{file.name}: the file changed while the change was applied")
    return {"name": file.name, "digest": preview.digest, "before_sha256": preview.before_sha256,
            "after_sha256": preview.after_sha256, "backup": str(backup),
            "changes": [c.to_dict() for c in preview.changes], "validation": validation}


def undo(config: ParamsConfig, applied: dict[str, Any], backups: Backups) -> dict[str, Any]:
    """Put back the text an applied change replaced, if the file is still as it left it."""
    file = config.file(applied["name"])
    before = backups.load(file, applied["digest"])
    if _files.sha256(before) != applied["before_sha256"]:
        raise Drifted(f"{file.name}: the backup of this change is damaged")
    current = _files.read(file)
    if current.sha256 != applied["after_sha256"]:
        raise UndoRefused(f"{file.name}: the file changed since the change was applied",
                          _three_way(file, applied, before, current))
    _files.sweep_temporaries(file.path)
    _files.replace(file.path, before, current.status, label="undo")
    if _files.read(file).sha256 != applied["before_sha256"]:
        raise Drifted(f"{file.name}: the file changed while the change was undone")
    return {"name": file.name, "digest": applied["digest"],
            "restored_sha256": applied["before_sha256"]}


def _checked_before(file: ParamFile, preview: ParamPreview) -> _files.Content:
    if digest(preview.name, preview.before_sha256, preview.after_sha256, preview.changes) \
            != preview.digest:
        raise Drifted(f"{file.name}: the preview does not match its digest")
    _files.sweep_temporaries(file.path)
    before = _files.read(file)
    if before.sha256 != preview.before_sha256:
        raise Drifted(f"{file.name}: the file changed since the preview; nothing was changed")
    return before


def _after_bytes(file: ParamFile, before: _files.Content, preview: ParamPreview) -> bytes:
    after, _, _ = render(file, before.text, {c.key: c.new for c in preview.changes})
    data = after.encode()
    if _files.sha256(data) != preview.after_sha256:
        raise Drifted(f"{file.name}: the change no longer gives the previewed text")
    _files.crash_point("apply:after-rendered")
    if _files.read(file).sha256 != preview.before_sha256:
        raise Drifted(f"{file.name}: the file changed since the preview; nothing was changed")
    return data


def _three_way(file: ParamFile, applied: dict[str, Any], before: bytes,
               current: _files.Content) -> dict[str, Any]:
    before_text = before.decode("utf-8")
    after_text, _, _ = render(file, before_text, {c["key"]: c["new"] for c in applied["changes"]})
    return {"name": file.name, "before_sha256": applied["before_sha256"],
            "after_sha256": applied["after_sha256"], "current_sha256": current.sha256,
            "diff_before_to_current": unified_diff(file.name, before_text, current.text),
            "diff_after_to_current": unified_diff(file.name, after_text, current.text)}
