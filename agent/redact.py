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

Log lines (:func:`redact_line`, :class:`LineRedactor` for a sequence of lines) hide all
of the above and also:

* private key blocks, ``-----BEGIN ... PRIVATE KEY-----`` to the matching ``-----END``
  line, within one line (escaped newlines in JSON) or across lines;
* ``name: value``, ``name = value`` and JSON ``"name": "value"`` for the secret names
  above, and Azure connection-string keys (``AccountKey=``, ``SharedAccessKey=``,
  ``sig=`` of SAS tokens);
* credentials recognisable by their form alone (:func:`redact_tokens`, also applied to
  command lines by :func:`redact_command`): AWS access key ids (``AKIA``, ``ASIA``, ...),
  Google API keys (``AIza``) and OAuth access tokens (``ya29.``), GitHub and Slack tokens,
  JSON Web Tokens.

Each hidden value counts as one redaction (so does each hidden line of a private key
block), so callers can report how much was hidden.

The customer's own patterns (:mod:`agent.redact_custom`) run after all of the above, on
each argument of a command line and on each log line; their matches are counted in the
total and, by pattern name, in ``custom_counts``.
"""

from __future__ import annotations

import itertools
import os.path
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.redact_custom import NO_PATTERNS, CustomRedaction

MASK = "***"

_SENSITIVE_NAME = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|access[-_]?key|auth"
    r"|credentials?|private[-_]?key|client[-_]?secret|session[-_]?key|account[-_]?key|sig)"
)
_SENSITIVE_END = re.compile(rf"{_SENSITIVE_NAME}\Z", re.IGNORECASE)
# A name (or header) can only be secret if the text holds a sensitive word somewhere:
# without one, the name-judging steps are skipped (they give the same result, slower).
# Each word of _SENSITIVE_NAME and of the header words contains one of _WORDS.
_ANY_SENSITIVE = re.compile(_SENSITIVE_NAME, re.IGNORECASE)
_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "sig")

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


def may_name_secret(text: str) -> bool:
    """False only if no name in ``text`` can be judged secret (a fast pre-check)."""
    if not text.isascii():  # case-insensitive matching knows more letters than lower()
        return _ANY_SENSITIVE.search(text) is not None
    lower = text.lower()
    return any(word in lower for word in _WORDS)


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
    """A command line with its secrets masked, and how many values were masked
    (``custom_counts``: those of them hidden by the customer's patterns, by name)."""

    args: tuple[str, ...]
    redactions: int
    custom_counts: Counter[str] = field(default_factory=Counter)

    @property
    def text(self) -> str:
        return " ".join(self.args)


def _may_hold_url(text: str) -> bool:
    return "@" in text and "://" in text


def _may_hold_scheme(text: str) -> bool:
    lower = text.lower()
    return not text.isascii() or any(w in lower for w in ("bearer", "basic", "token"))


class _Masker:
    """Masks values and counts them; the steps of :func:`redact_text` and log lines."""

    def __init__(self, text: str) -> None:
        self.count = 0
        self.names = may_name_secret(text)  # whether the name-judging steps can find any

    def mask(self, keep: str, value: str) -> str:
        if value.startswith(MASK):  # already hidden by an earlier pattern
            return keep + value
        self.count += 1
        return keep + MASK

    def urls(self, text: str) -> str:
        if not _may_hold_url(text):
            return text
        return _URL_CREDENTIALS.sub(lambda m: self.mask(m["prefix"] + ":", m["pw"]) + "@", text)

    def headers(self, text: str) -> str:
        if not self.names:
            return text
        return _after_names(text, _HEADER_NAME, _header_secret, _HEADER_VALUE, self._header)

    def _header(self, name: str, m: re.Match[str]) -> str:
        keep, value = m["sep"], m["value"]
        if name.lower().endswith("authorization"):
            scheme, space, credentials = value.partition(" ")
            if credentials.strip():  # "Basic xyz": keep the scheme, hide the credentials
                keep, value = keep + scheme + space, credentials
        return self.mask(keep, value)

    def schemes(self, text: str, pattern: re.Pattern[str] | None = None) -> str:
        if not _may_hold_scheme(text):
            return text
        return (pattern or _AUTH_SCHEME).sub(lambda m: self.mask(m["scheme"], m["value"]), text)

    def assigned(self, text: str) -> str:
        if not self.names:
            return text
        return _after_names(text, _ASSIGNED_NAME, _names_secret, _ASSIGNED_VALUE,
                            lambda name, m: self.mask(m["sep"], m["value"]))


def redact_text(text: str) -> tuple[str, int]:
    """``text`` with every recognised secret value replaced by ``***``, and the count."""
    masker = _Masker(text)
    text = masker.assigned(masker.schemes(masker.headers(masker.urls(text))))
    return text, masker.count


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


# Log lines. Same discipline: every run is possessive or bounded, and each start position
# is tried by a pattern whose literal prefix fails at once, so the work stays linear.
_LOG_NAME = re.compile(r"(?<![A-Za-z0-9_.-])[A-Za-z0-9_.-]++(?=[\"']?[ \t]*+(?:=|:(?!//)))")
_LOG_VALUE = re.compile(
    # A quoted value ends at its closing quote (or after 2048 characters, or at a line
    # break): it always matches, so a value is never scanned twice.
    r"(?P<sep>[\"']?[ \t]*+[=:][ \t]*+)"
    r"(?P<value>\"(?:[^\"\\\r\n]|\\.){0,2048}+\"?|'[^'\r\n]{0,2048}+'?|[^\s&;,\"']++)")
# As _AUTH_SCHEME, but "token = x" is a pair, not the scheme "token" with value "=".
_LOG_AUTH_SCHEME = re.compile(
    r"(?P<scheme>\b(?:Bearer|Basic|Token)\s+)(?P<value>[^\s\"'=:][^\s\"']*+)", re.IGNORECASE)
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}(?![A-Za-z0-9])"
    r"|AIza[0-9A-Za-z_-]{35}+"
    r"|ya29\.[0-9A-Za-z_-]++"
    r"|gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{30,}+"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}+"
    r"|eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]++\.[A-Za-z0-9_-]*+"
    r")")
_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")


def redact_tokens(text: str) -> tuple[str, int]:
    """``text`` with credentials recognisable by their form alone masked, and the count."""
    return _TOKEN.subn(MASK, text)


def redact_command(args: Sequence[str], custom: CustomRedaction = NO_PATTERNS) -> Redacted:
    """:func:`redact_args`, then :func:`redact_tokens` and ``custom`` on each argument."""
    redacted = redact_args(args)
    out, count, counts = [], redacted.redactions, Counter[str]()
    for arg in redacted.args:
        text, n = redact_tokens(arg)
        out.append(custom.apply(text, MASK, counts) if custom else text)
        count += n
    return Redacted(tuple(out), count + counts.total(), counts)


class _LogMasker(_Masker):
    def mask(self, keep: str, value: str) -> str:
        if value.lstrip("\"'").startswith(MASK):  # a quoted value hidden by pairs()
            return keep + value
        return super().mask(keep, value)

    def pairs(self, text: str) -> str:
        """``name: value``, ``name = value`` and ``"name": "value"`` for secret names."""
        if not self.names:
            return text
        return _after_names(text, _LOG_NAME, _names_secret, _LOG_VALUE, self._pair)

    def _pair(self, name: str, m: re.Match[str]) -> str:
        value = m["value"]
        quote = value[0] if value[0] in "\"'" else ""
        inner = value[len(quote):]
        closed = bool(quote) and len(inner) > 0 and inner.endswith(quote)
        inner = inner[:-1] if closed else inner
        if not inner or inner.startswith(MASK):
            return m.group()  # nothing to hide, or hidden already
        self.count += 1
        return m["sep"] + quote + MASK + (quote if closed else "")

    def tokens(self, text: str) -> str:
        text, count = redact_tokens(text)
        self.count += count
        return text


class LineRedactor:
    """Redacts the lines of one log in order; a private key block may span lines.

    Feed the lines that precede the ones shown too (context), so that a block that
    began before them is recognised; their output is simply not shown. The redactions
    of ``custom`` patterns add up in :attr:`custom_counts` over the lines redacted.
    """

    def __init__(self, custom: CustomRedaction = NO_PATTERNS) -> None:
        self._in_key = False
        self._custom = custom
        self.custom_counts: Counter[str] = Counter()

    def redact(self, line: str) -> tuple[str, int]:
        """``line`` with every recognised secret masked, and the count."""
        masker = _LogMasker(line)
        text = self._key_blocks(line, masker)
        text = masker.assigned(masker.pairs(masker.headers(masker.urls(text))))
        text = masker.tokens(masker.schemes(text, _LOG_AUTH_SCHEME))
        if not self._custom:
            return text, masker.count
        before = self.custom_counts.total()
        text = self._custom.apply(text, MASK, self.custom_counts)
        return text, masker.count + self.custom_counts.total() - before

    def take_custom_counts(self) -> Counter[str]:
        """The custom counts so far, starting a new tally."""
        counts, self.custom_counts = self.custom_counts, Counter()
        return counts

    def follow(self, line: str) -> None:
        """Take ``line`` as context: track key blocks in it, show nothing of it."""
        self._key_blocks(line, _Masker(""))

    def _key_blocks(self, line: str, masker: _Masker) -> str:
        if not self._in_key and "PRIVATE KEY" not in line:  # both markers hold it
            return line
        out: list[str] = []
        pos = 0
        while True:
            if self._in_key:  # each hidden piece of a block counts once
                end = _KEY_END.search(line, pos)
                if end is None:
                    return "".join(out) + masker.mask("", line[pos:]) if pos < len(line) \
                        else "".join(out)
                out += [masker.mask("", line[pos:end.start()]) if end.start() > pos else "",
                        end.group()]
                pos, self._in_key = end.end(), False
                continue
            begin = _KEY_BEGIN.search(line, pos)
            if begin is None:
                orphan = _KEY_END.search(line, pos)  # the end of a block begun before
                if orphan is not None and orphan.start() > pos:
                    return "".join(out) + masker.mask("", line[pos:orphan.start()]) \
                        + line[orphan.start():]
                return "".join(out) + line[pos:]
            out.append(line[pos:begin.end()])
            pos, self._in_key = begin.end(), True


def redact_line(line: str, custom: CustomRedaction = NO_PATTERNS) -> tuple[str, int]:
    """One log line with every recognised secret masked, and the count."""
    return LineRedactor(custom).redact(line)
