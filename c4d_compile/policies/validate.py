"""Validation helpers shared by the policy dataclasses: bad values raise a typed error naming the range."""

from __future__ import annotations

import enum
import math
from typing import Any, TypeVar

from ..errors import InvalidValueError


def check_int(field: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidValueError(field, value, f"an integer >= {minimum}")


def check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidValueError(field, value, "True or False")


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_number(field: str, value: Any, minimum: float, maximum: float | None = None, note: str = "") -> None:
    if not is_number(value) or value < minimum or (maximum is not None and value > maximum):
        valid = f"a number in [{minimum:g}, {maximum:g}]" if maximum is not None else f"a finite number >= {minimum:g}"
        raise InvalidValueError(field, value, valid + (f" ({note})" if note else ""))


E = TypeVar("E", bound=enum.Enum)


def parse_enum(kind: type[E], field: str, value: Any) -> E:
    """A member of ``kind`` from itself or its value; else a typed error listing the values."""
    try:
        return kind(value)
    except ValueError:
        raise InvalidValueError(field, value, f"one of {[m.value for m in kind]}") from None
