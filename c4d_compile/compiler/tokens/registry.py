"""Token selection handlers by the ``Selection`` a token subset names: ``bind_tokens`` is the plan's handler."""

from __future__ import annotations

from ...errors import InvalidValueError
from ...policies.tokens import TokenSubset

HANDLERS: dict = {}


def register_tokens(cls: type) -> type:
    """Class decorator: the handler of ``cls.selection``."""
    HANDLERS[cls.selection] = cls
    return cls


def bind_tokens(subset: TokenSubset, partial: tuple, spaces: tuple):
    """The handler of ``subset``'s selection, bound to the token-local branches of a graph."""
    cls = HANDLERS.get(subset.selection)
    if cls is None:
        raise InvalidValueError("selection", subset.selection, ", ".join(s.value for s in HANDLERS))
    return cls.bind(subset, partial, spaces)
