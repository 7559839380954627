"""Validation helpers shared by the policy dataclasses: bad values raise a typed error naming the range."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidValueError


def check_int(field: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidValueError(field, value, f"an integer >= {minimum}")


def check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidValueError(field, value, "True or False")
