"""Checking values typed by people before anything is signed or sent."""

from __future__ import annotations

import datetime as dt
import re

import permissions
from controller.client.errors import InputError
from pki.identity import IdentityError, check_name

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_date(text: str, what: str = "date") -> str:
    """``text`` if it is a calendar date written YYYY-MM-DD."""
    try:
        if _DATE.fullmatch(text):
            dt.date.fromisoformat(text)
            return text
    except ValueError:
        pass
    raise InputError(f"invalid {what} {text!r}: use YYYY-MM-DD")


def parse_contract(start: str, end: str) -> tuple[str, str]:
    """Contract start and end dates; the end may not precede the start."""
    first, last = parse_date(start, "contract start"), parse_date(end, "contract end")
    if last < first:
        raise InputError(f"the contract ends ({last}) before it starts ({first})")
    return first, last


def parse_duration(text: str, what: str = "duration") -> int:
    """Seconds in a duration such as 90s, 30m, 2h, 1d, 1h30m."""
    try:
        return permissions.parse_duration(text)
    except permissions.MalformedStatement as exc:
        raise InputError(f"{what}: {exc}") from exc


def parse_name(text: str, what: str) -> str:
    """An agent id or a person's name: a-z, 0-9 and '-', at most 63."""
    try:
        return check_name(text, what)
    except IdentityError as exc:
        raise InputError(str(exc)) from exc
