"""Why a parameter change cannot be previewed, applied or undone.

::

    ParamsError
    ├── ParamsConfigInvalid    the customer's [[params.files]] breaks a rule (also a ValueError)
    ├── UnknownParamFile       no allowlisted file has that name
    ├── ChangeRejected         a key outside the allowlist, a value of the wrong type, a bad file
    ├── FileRefused            not a regular file, a symbolic link, too large, unreadable
    ├── Drifted                the file is no longer what the preview (or the apply) saw
    ├── ValidationFailed       the customer's validation command failed; the backup is back
    └── UndoRefused            the file changed since the apply; ``view`` shows the three ways

Messages are for the customer's log and the engineer's screen: they name keys and
files by their allowlisted name, never a secret value.
"""

from __future__ import annotations

from typing import Any


class ParamsError(Exception):
    """Base of every error of the parameter-change engine."""


class ParamsConfigInvalid(ParamsError, ValueError):
    """The [[params.files]] policy is invalid; the message names the entry and key."""


class UnknownParamFile(ParamsError):
    """The name is not an allowlisted parameter file."""


class ChangeRejected(ParamsError):
    """The requested change is not allowed or not well-typed; nothing was touched."""


class FileRefused(ParamsError):
    """The file cannot be used safely; ``code`` says why in a word or two."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Drifted(ParamsError):
    """The file's content is not what was expected; nothing was changed."""


class ValidationFailed(ParamsError):
    """The validation command rejected the new file; the previous content is restored."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


class UndoRefused(ParamsError):
    """The file changed after the apply; ``view`` holds before, after and current."""

    def __init__(self, message: str, view: dict[str, Any]) -> None:
        super().__init__(message)
        self.view = view
