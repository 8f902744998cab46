"""Redaction of secrets in command lines, before anything leaves the customer host.

Pure. Recognised forms (names matched case-insensitively, e.g. password, passwd, pwd,
secret, token, api_key, apikey, access_key, auth, credentials, private_key):

* ``name=value`` anywhere in an argument (``--password=x``, ``PGPASSWORD=x``, ``?token=x``);
* a flag naming a secret followed by its value as the next argument (``--password x``);
  names may carry suffixes (``SECRET_KEY``, ``password-file``), so more is hidden, not less;
* ``--password``, ``--passwd``, ``--secret`` and ``--token`` hide the next argument even
  when it starts with ``-`` (other secret-naming flags leave a following flag visible);
* URLs with credentials: ``scheme://user:pass@host`` keeps the user, hides the password;
* HTTP authorization values: ``Bearer x``, ``Basic x``;
* HTTP headers carrying credentials, ``Name: value``: ``Authorization`` and
  ``Proxy-Authorization`` (their scheme word stays visible), and every header whose name
  has a dash-separated word ``api-key``/``apikey``, ``token``, ``secret``, ``auth`` or
  ``access-key`` (``X-Api-Key``, ``Api-Key``, ``X-Auth-Token``): the value is hidden;
* tool-specific short flags, once the tool's name (a path's last part) is an argument:
  ``mysql``/``mariadb`` and their tools (``mysqldump``, ``mariadb-admin``, ...) hide
  ``-pVALUE`` (``-p`` alone only prompts, and ``-P`` is the port); ``sshpass`` hides
  ``-p VALUE`` and ``-pVALUE`` before the command it wraps; ``redis-cli`` (and
  ``valkey-cli``, ``keydb-cli``) hides ``-a VALUE``.

Each hidden value counts as one redaction, so callers can report how much was hidden.
"""

from __future__ import annotations

import itertools
import os.path
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MASK = "***"

_SENSITIVE_NAME = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|access[-_]?key|auth"
    r"|credentials?|private[-_]?key|client[-_]?secret|session[-_]?key)"
)
_SENSITIVE_END = re.compile(rf"{_SENSITIVE_NAME}\Z", re.IGNORECASE)
_SENSITIVE_LONGEST = len("client-secret")  # the longest word _SENSITIVE_NAME matches
_ALNUM = frozenset(string.ascii_letters + string.digits)

# Every pattern runs in time linear in its input, whatever the input: command lines are
# written by anyone on the host, and a regular expression that backtracks on a crafted
# argument would hold the interpreter (and with it the agent) for minutes. So names are
# found as whole runs of name characters (possessive, each run tried once) and judged in
# Python, instead of by nested quantifiers.
_NAME_RUN = re.compile(r"[A-Za-z0-9_.-]+")
_ASSIGNED_NAME = re.compile(r"(?<![A-Za-z0-9_.-])[A-Za-z0-9_.-]++(?==|:(?!//))")
_ASSIGNED_VALUE = re.compile(r"(?P<sep>=|:)(?P<value>[^\s&;,]+)")
_URL_CREDENTIALS = re.compile(
    r"(?P<prefix>(?<![A-Za-z0-9+.-])[A-Za-z0-9+.-]++://[^/\s:@]*+):(?P<pw>[^@\s/]++)@")
_AUTH_SCHEME = re.compile(r"(?P<scheme>\b(?:Bearer|Basic|Token)\s+)(?P<value>[^\s\"']+)",
                          re.IGNORECASE)
_SCHEME_WORD = re.compile(r"(?:Bearer|Basic|Token)", re.IGNORECASE)
# Flags that always take a value: the next argument is hidden whatever it looks like.
_VALUE_FLAG = re.compile(r"--(?:password|passwd|secret|token)", re.IGNORECASE)
_HEADER_NAME = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9-]++(?=[ \t]*+:(?!//))")
_HEADER_VALUE = re.compile(
    # To the end of the line, or to a closing quote (one followed by a space or the end).
    r"(?P<sep>[ \t]*+:[ \t]*+)(?P<value>[^\s\"'](?:[^\r\n\"']|[\"'](?!\s|$))*+)")
_HEADER_WORDS = frozenset({"authorization", "auth", "token", "secret", "apikey"})
_HEADER_PAIRS = frozenset({("api", "key"), ("access", "key")})
_MYSQL_TOOL = re.compile(r"(?:mysql|mariadb)[a-z_-]*")
_REDIS_TOOL = re.compile(r"(?:redis|valkey|keydb)-cli")
_ATTACHED_P = re.compile(r"-p(?P<value>.+)", re.DOTALL)
_SSHPASS_OPTIONS_WITH_VALUE = frozenset({"-f", "-d", "-P"})


def _names_secret(name: str) -> bool:
    """Whether a secret word ends ``name`` or is followed only by ``[-_]word`` suffixes.

    PGPASSWORD, db_password, SECRET_KEY, --api-key, password-file: yes; author,
    password.txt: no. Linear: each suffix is stepped over once, each word check looks
    back a bounded window.
    """
    end = len(name)
    while end > 0:
        if _SENSITIVE_END.search(name, max(0, end - _SENSITIVE_LONGEST), end):
            return True
        start = end
        while start > 0 and name[start - 1] in _ALNUM:
            start -= 1
        if start == end or start == 0 or name[start - 1] not in "-_":
            return False
        end = start - 1
    return False


def _secret_flag(arg: str) -> bool:
    """``--password``, ``-api-key``, ``--password-file``: a flag whose name is secret."""
    return arg.startswith("-") and _NAME_RUN.fullmatch(arg) is not None and _names_secret(arg)


def _header_secret(name: str) -> bool:
    words = [word for word in name.lower().split("-") if word]
    return (any(word in _HEADER_WORDS for word in words)
            or any(pair in _HEADER_PAIRS for pair in itertools.pairwise(words)))


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

    def header(name: str, m: re.Match[str]) -> str:
        keep, value = m["sep"], m["value"]
        if name.lower().endswith("authorization"):
            scheme, space, credentials = value.partition(" ")
            if credentials.strip():  # "Basic xyz": keep the scheme, hide the credentials
                keep, value = keep + scheme + space, credentials
        return mask(keep, value)

    text = _URL_CREDENTIALS.sub(lambda m: mask(m["prefix"] + ":", m["pw"]) + "@", text)
    text = _after_names(text, _HEADER_NAME, _header_secret, _HEADER_VALUE, header)
    text = _AUTH_SCHEME.sub(lambda m: mask(m["scheme"], m["value"]), text)
    text = _after_names(text, _ASSIGNED_NAME, _names_secret, _ASSIGNED_VALUE,
                        lambda name, m: mask(m["sep"], m["value"]))
    return text, count


def _after_names(text: str, names: re.Pattern[str], secret: Callable[[str], bool],
                 value: re.Pattern[str], replace: Callable[[str, re.Match[str]], str]) -> str:
    """``text`` with ``replace(name, match)`` for each ``value`` match after a secret name.

    Like ``re.sub`` of name-then-value, scanning on after each replaced value, but the
    name is judged by ``secret`` in Python rather than by backtracking.
    """
    out: list[str] = []
    done = 0
    for name in names.finditer(text):
        if name.start() < done:
            continue  # inside a value already replaced
        if not secret(name.group()):
            continue
        found = value.match(text, name.end())
        if found is None:
            continue
        out.append(text[done:name.end()])
        out.append(replace(name.group(), found))
        done = found.end()
    out.append(text[done:])
    return "".join(out)


def _tool(arg: str) -> str | None:
    name = os.path.basename(arg)
    if _MYSQL_TOOL.fullmatch(name):
        return "mysql"
    if _REDIS_TOOL.fullmatch(name):
        return "redis-cli"
    return "sshpass" if name == "sshpass" else None


def redact_args(args: Sequence[str]) -> Redacted:
    """Redact each argument; a secret-naming flag without ``=`` also hides the next one."""
    out: list[str] = []
    count = 0
    hide_next = False  # hide the next argument unless it is a flag
    hide_value = False  # hide the next argument whatever it is
    tool: str | None = None  # the tool whose short flags apply, see the module docstring
    option_value = False  # the next argument is the value of an sshpass option
    for arg in args:
        if hide_value or (hide_next and not arg.startswith("-")):
            out.append(MASK)
            count += 1
            hide_next = hide_value = False
            continue
        if option_value:
            option_value = False
        elif (kind := _tool(arg)) is not None:
            tool = kind
        elif tool == "sshpass" and not arg.startswith("-"):
            tool = _tool(arg)  # the command sshpass runs: its flags are not sshpass's
        attached = _ATTACHED_P.fullmatch(arg)
        if tool in ("mysql", "sshpass") and attached is not None:  # -pVALUE
            out.append("-p" + MASK)
            count += 1
            continue
        text, n = redact_text(arg)
        out.append(text)
        count += n
        # "--password x" and an authorization scheme split from its value ("Bearer", "x").
        hide_next = _secret_flag(arg) or _SCHEME_WORD.fullmatch(arg) is not None
        hide_value = (_VALUE_FLAG.fullmatch(arg) is not None
                      or (tool == "sshpass" and arg == "-p")
                      or (tool == "redis-cli" and arg == "-a"))
        option_value = tool == "sshpass" and arg in _SSHPASS_OPTIONS_WITH_VALUE
    return Redacted(tuple(out), count)
