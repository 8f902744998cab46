"""Values checked as they are parsed: a bad one is a usage error naming its option or argument.

Each check is a typer callback that returns the text as typed once it is well formed; the
command converts it. So ``rmctl access request --for xyz`` stops with exit status 2 and
``error: invalid value for '--for': ... (see 'rmctl access request --help')`` before the
home is read or anything is signed or sent.
"""

from __future__ import annotations

import re

import typer

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def duration(text: str) -> str:
    """A duration such as 90s, 30m, 2h, 1d or 1h30m."""
    from controller.client.errors import InputError
    from controller.client.inputs import parse_duration

    try:
        parse_duration(text, "duration")
    except InputError as exc:
        raise typer.BadParameter(str(exc).removeprefix("duration: ")) from exc
    return text


def optional_duration(text: str | None) -> str | None:
    """A duration (see :func:`duration`), or None when the option is not given."""
    return None if text is None else duration(text)


def grant_duration(text: str) -> str:
    """A duration (see :func:`duration`) no longer than a grant may last."""
    from controller.client.inputs import parse_duration
    from permissions.statements import MAX_GRANT_SECONDS

    if parse_duration(duration(text)) > MAX_GRANT_SECONDS:
        raise typer.BadParameter(f"{text} is too long: at most {MAX_GRANT_SECONDS // 86400} days")
    return text


def date(text: str) -> str:
    """A calendar date written YYYY-MM-DD."""
    from controller.client.errors import InputError
    from controller.client.inputs import parse_date

    try:
        return parse_date(text)
    except InputError as exc:
        raise typer.BadParameter(f"{text!r} is not a date written YYYY-MM-DD") from exc


def agent_id(text: str) -> str:
    """An agent id: a-z, 0-9 and '-', at most 63."""
    return _name(text, "agent id")


def person_name(text: str) -> str:
    """An engineer's or auditor's name: a-z, 0-9 and '-', at most 63."""
    return _name(text, "name")


def _name(text: str, what: str) -> str:
    from controller.client.errors import InputError
    from controller.client.inputs import parse_name

    try:
        return parse_name(text, what)
    except InputError as exc:
        raise typer.BadParameter(str(exc)) from exc


def user_at_host(text: str) -> str:
    """An SSH destination written USER@HOST."""
    user, at, host = text.rpartition("@")
    if not (user and at and host):
        raise typer.BadParameter(f"{text!r} is not USER@HOST")
    return text


def change_digest(text: str) -> str:
    """A previewed change's whole digest, sha256:<64 lowercase hex> (the agent applies
    nothing by a prefix: the engineer names exactly what the customer consented to)."""
    if not _DIGEST.fullmatch(text):
        raise typer.BadParameter(f"{text!r} is not a whole change digest: sha256: and 64 "
                                 "lowercase hex digits, as the preview printed it")
    return text
