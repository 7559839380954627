"""Peer libraries' caches as bench methods, by name. Each library's adapters live in their own module.

The peers are an optional extra (``pip install "c4d-compile[peers]"``); the adapters import their
library only when a row is prepared, so a missing one turns its rows into "skipped" entries.
"""

from __future__ import annotations

from ..methods import Method
from . import cache_dit_caches, diffusers_caches
from .cache_dit_caches import CACHE_DIT_METHODS
from .diffusers_caches import DIFFUSERS_METHODS

PEERS: dict[str, Method] = {m.label: m for m in (*DIFFUSERS_METHODS, *CACHE_DIT_METHODS)}


def peers_at_budget(budget: int) -> list[Method]:
    """The peers' TaylorSeer variants set to compute ``budget`` full steps: the equal-compute comparison."""
    return [diffusers_caches.taylorseer_at(budget, lite=False), diffusers_caches.taylorseer_at(budget, lite=True),
            cache_dit_caches.taylorseer_at(budget)]


def peers_at_threshold(threshold: float) -> list[Method]:
    """The peers' signal-driven caches at one decision threshold (FirstBlockCache, MagCache, DBCache)."""
    return [*diffusers_caches.signal_caches_at(threshold), *cache_dit_caches.dbcache_at(threshold)]
