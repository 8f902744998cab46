"""Strict reading of an operation's parameters.

Parameters arrive as decoded JSON inside the engineer's signed operation. Every reader
refuses unknown keys, wrong types (``True`` is not a number here) and out-of-range
values with :class:`~agent.errors.InvalidParams`, whose message starts with the
operation's name and names the parameter.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

from agent.errors import InvalidParams

Params = Mapping[str, Any]
T = TypeVar("T")


class ParamReader:
    """Reads the parameters of one operation; construction refuses unknown keys."""

    def __init__(self, operation: str, params: Params, allowed: Iterable[str]) -> None:
        self.operation = operation
        self._params = params
        allowed = set(allowed)
        unknown = set(params) - allowed
        if unknown and not allowed:
            self.fail(f"takes no parameters, got: {', '.join(sorted(unknown))}")
        if unknown:
            self.fail(f"unknown parameter {', '.join(sorted(unknown))}")

    def fail(self, message: str) -> NoReturn:
        """Raise InvalidParams for this operation."""
        raise InvalidParams(f"{self.operation}: {message}")

    def has(self, name: str) -> bool:
        return name in self._params

    def integer(self, name: str, default: int | None, low: int, high: int) -> int:
        value = self._params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(f"{name} must be an integer from {low} to {high}")
        return value

    def number(self, name: str, default: float | None, low: float, high: float) -> float:
        value = self._params.get(name, default)
        # Compared before any float(): an integer too large for a float would raise.
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not low <= value <= high or not math.isfinite(value):
            self.fail(f"{name} must be a number from {low:g} to {high:g}")
        return float(value)

    def optional_number(self, name: str, low: float, high: float) -> float | None:
        return self.number(name, None, low, high) if name in self._params else None

    def boolean(self, name: str, default: bool) -> bool:
        value = self._params.get(name, default)
        if not isinstance(value, bool):
            self.fail(f"{name} must be true or false")
        return value

    def choice(self, name: str, default: T, choices: Collection[T]) -> T:
        value = self._params.get(name, default)
        if value not in choices or isinstance(value, bool):
            shown = " or ".join(f'"{c}"' for c in choices)
            self.fail(f"{name} must be {shown}")
        return value  # type: ignore[no-any-return]  # checked to be one of ``choices``

    def text(self, name: str, *, max_length: int, default: str | None = None) -> str:
        """A string of 1..max_length characters, without NUL or line breaks."""
        value = self._params.get(name, default)
        if not isinstance(value, str) or not 0 < len(value) <= max_length \
                or any(c in value for c in "\x00\r\n"):
            self.fail(f"{name} must be a string of 1 to {max_length} characters "
                      "without line breaks")
        return value

    def optional_text(self, name: str, *, max_length: int) -> str | None:
        return self.text(name, max_length=max_length) if name in self._params else None

    def one_of(self, names: tuple[str, str]) -> str:
        """The one of two mutually exclusive parameters that is given."""
        given = [n for n in names if n in self._params]
        if len(given) != 1:
            self.fail(f"give exactly one of {' or '.join(names)}")
        return given[0]
