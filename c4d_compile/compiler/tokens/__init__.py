"""Token selection handlers: one selection's whole slice of a plan per file, registered by its ``Selection``.

Importing the package registers every handler; ``bind_tokens(subset, partial, spaces)`` returns the plan's.
"""

from . import cluster_rows, random_rows, score_rows  # noqa: F401  (register)
from .base import TokenHandler
from .registry import bind_tokens, register_tokens

__all__ = ["TokenHandler", "bind_tokens", "register_tokens"]
