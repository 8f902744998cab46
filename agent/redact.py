"""Redaction of secrets in command lines, before anything leaves the customer host.

Pure. Recognised forms (names matched case-insensitively, e.g. password, passwd, pwd,
secret, token, api_key, apikey, access_key, auth, credentials, private_key):

* ``name=value`` anywhere in an argument (``--password=x``, ``PGPASSWORD=x``, ``?token=x``);
* a flag naming a secret followed by its value as the next argument (``--password x``);
  names may carry suffixes (``SECRET_KEY``, ``password-file``), so more is hidden, not less;
* URLs with credentials: ``scheme://user:pass@host`` keeps the user, hides the password;
* HTTP authorization values: ``Bearer x``, ``Basic x``.

Each hidden value counts as one redaction, so callers can report how much was hidden.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MASK = "***"

_SENSITIVE_NAME = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|access[-_]?key|auth"
    r"|credentials?|private[-_]?key|client[-_]?secret|session[-_]?key)"
)
# A name whose last words include a secret word: PGPASSWORD, db_password, SECRET_KEY, --api-key.
_NAME = rf"[A-Za-z0-9_.-]*{_SENSITIVE_NAME}(?:[-_][A-Za-z0-9]+)*"
_ASSIGNMENT = re.compile(
    rf"(?P<name>{_NAME})(?P<sep>=|:(?!//))(?P<value>[^\s&;,]+)",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"(?P<prefix>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):(?P<pw>[^@\s/]+)@")
_AUTH_SCHEME = re.compile(r"(?P<scheme>\b(?:Bearer|Basic|Token)\s+)(?P<value>[^\s\"']+)",
                          re.IGNORECASE)
_SECRET_FLAG = re.compile(rf"-{{1,2}}{_NAME}", re.IGNORECASE)
_SCHEME_WORD = re.compile(r"(?:Bearer|Basic|Token)", re.IGNORECASE)


@dataclass(frozen=True)
class Redacted:
    """A command line with its secrets masked, and how many values were masked."""

    args: tuple[str, ...]
    redactions: int

    @property
    def text(self) -> str:
        return " ".join(self.args)


def redact_text(text: str) -> tuple[str, int]:
    """``text`` with every recognised secret value replaced by ``***``, and the count."""
    count = 0

    def mask(keep: str, value: str) -> str:
        nonlocal count
        if value.startswith(MASK):  # already hidden by an earlier pattern
            return keep + value
        count += 1
        return keep + MASK

    text = _URL_CREDENTIALS.sub(lambda m: mask(m["prefix"] + ":", m["pw"]) + "@", text)
    text = _AUTH_SCHEME.sub(lambda m: mask(m["scheme"], m["value"]), text)
    text = _ASSIGNMENT.sub(lambda m: mask(m["name"] + m["sep"], m["value"]), text)
    return text, count


def redact_args(args: Sequence[str]) -> Redacted:
    """Redact each argument; a secret-naming flag without ``=`` also hides the next one."""
    out: list[str] = []
    count = 0
    hide_next = False
    for arg in args:
        if hide_next and not arg.startswith("-"):
            out.append(MASK)
            count += 1
            hide_next = False
            continue
        text, n = redact_text(arg)
        out.append(text)
        count += n
        # "--password x" and an authorization scheme split from its value ("Bearer", "x").
        hide_next = (_SECRET_FLAG.fullmatch(arg) or _SCHEME_WORD.fullmatch(arg)) is not None
    return Redacted(tuple(out), count)
