"""Parameter changes (scope ``config.write``): customer-allowlisted keys in config files.

The engine has three steps, each a plain function over the customer's policy:

- ``preview(config, name, {key: new_value}) -> ParamPreview``: reads the file (nothing
  else), checks keys against the allowlist and values against the current types,
  computes the new text with formatting and comments kept, and returns the changes,
  a unified diff, both texts' sha256 and the ``digest`` the customer consents to.
- ``apply(config, preview, backups) -> dict``: the previewed change exactly, or nothing;
  atomic, backed up, validated, restored when the validation command fails.
- ``undo(config, applied, backups) -> dict``: the backup back, only over the applied text.

Modules: ``policy`` (``[[params.files]]``), ``_preview``, ``_apply``, ``backups``,
``errors`` (the exception tree); ``_lines`` (INI, key=value) and ``_trees`` (TOML,
JSON, YAML) edit text; ``_files`` reads and replaces files; ``_validate`` runs the
validation command. The functions block (file system, a subprocess): call them in a
worker thread.
"""

from typing import TYPE_CHECKING

from agent.params.errors import (
    ChangeRejected,
    Drifted,
    FileRefused,
    ParamsConfigInvalid,
    ParamsError,
    UndoRefused,
    UnknownParamFile,
    ValidationFailed,
)
from agent.params.policy import ParamFile, ParamsConfig, parse, to_toml

if TYPE_CHECKING:
    from agent.params._apply import apply, undo
    from agent.params._preview import Change, ParamPreview, preview
    from agent.params.backups import Backups

# The engine loads on first use: reading the policy (agent.toml) must not pull in the
# TOML and YAML editors, which an idle agent never needs.
_ENGINE = {"apply": "_apply", "undo": "_apply", "Change": "_preview",
           "ParamPreview": "_preview", "preview": "_preview", "Backups": "backups"}


def __getattr__(name: str) -> object:
    module = _ENGINE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = ["Backups", "Change", "ChangeRejected", "Drifted", "FileRefused", "ParamFile",
           "ParamPreview", "ParamsConfig", "ParamsConfigInvalid", "ParamsError", "UndoRefused",
           "UnknownParamFile", "ValidationFailed", "apply", "parse", "preview", "to_toml", "undo"]
