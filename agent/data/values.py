"""Values between JSON and the database, row images, and masking.

Engineers send JSON scalars; they are converted to the column's Python type where the
driver needs it (dates, times, decimals) and always bound as parameters. Rows read back
become JSON-ready images (``None``, bool, int, float, str), compared as such.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from agent.data.errors import InvalidPlan

MASK = "***"
MAX_TEXT = 65536
Image = dict[str, Any]


def check_scalar(value: Any, where: str) -> Any:
    """``value`` if it is a JSON scalar the agent binds; InvalidPlan otherwise."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise InvalidPlan(f"{where}: text longer than {MAX_TEXT} characters")
        return value
    raise InvalidPlan(f"{where}: values must be null, booleans, numbers or text")


def to_db(column: sa.Column[Any], value: Any) -> Any:
    """A JSON scalar as the driver should bind it for ``column``."""
    if not isinstance(value, str):
        return value
    try:
        kind = column.type.python_type
    except NotImplementedError:  # SQLAlchemy's answer for types with no Python type
        return value  # (e.g. a database-specific type): the driver binds the text as it is
    try:
        return _PARSERS[kind](value) if kind in _PARSERS else value
    except (ValueError, decimal.InvalidOperation) as exc:
        raise InvalidPlan(f"{column.name}: {kind.__name__} expected") from exc


_PARSERS: dict[type, Any] = {
    dt.datetime: dt.datetime.fromisoformat, dt.date: dt.date.fromisoformat,
    dt.time: dt.time.fromisoformat, decimal.Decimal: decimal.Decimal, uuid.UUID: uuid.UUID,
}


def to_json(value: Any) -> Any:
    """A value read from the database as a JSON scalar."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        text = format(value, "f")  # never exponent notation; no trailing zeros of scale
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "base64:" + base64.b64encode(bytes(value)).decode()
    return str(value)


def image(row: sa.RowMapping | None) -> Image | None:
    return None if row is None else {k: to_json(v) for k, v in row.items()}


def masked(row: Mapping[str, Any] | None, columns: tuple[str, ...]) -> Image | None:
    """``row`` with the values of ``columns`` replaced by ``***`` (null stays null)."""
    if row is None:
        return None
    return {k: (MASK if k in columns and v is not None else v) for k, v in row.items()}
