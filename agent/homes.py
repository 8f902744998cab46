"""The agent's home directory by default, and rmagent commands as a user types them for one.

Messages that tell the user to run an rmagent command name the home they are about, so
the command works when pasted: ``rmagent --home DIR approver init``, not a bare command
that would act on another home.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

DEFAULT_HOME = "~/.rmaint-agent"
HOME_ENV = "RMAINT_HOME"


def command_for(words: str, home: Path | None) -> str:
    """``rmagent WORDS`` as the user would type it for ``home``: with ``--home DIR`` unless
    a bare command finds that home anyway (it is RMAINT_HOME, or the default when
    RMAINT_HOME is unset) or the home is not known (None)."""
    bare = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()
    if home is None or home.absolute() == bare.absolute():
        return f"rmagent {words}"
    return f"rmagent --home {shlex.quote(str(home))} {words}"


def logged_command_for(words: str, home: Path) -> str:
    """``rmagent --home /ABSOLUTE/HOME WORDS``, for the daemon's log: it is read later, from
    another shell, where neither this process's RMAINT_HOME nor its directory holds."""
    return f"rmagent --home {shlex.quote(str(home.absolute()))} {words}"
