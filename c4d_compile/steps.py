"""Step tracking: which guidance context a call belongs to, its step index, and new generations.

Inference from the timestep value alone (design.md §3):
* the same timestep as the previous call = the next guidance branch of the same step
  (separate cond / uncond calls), each branch with its own context and cache;
* within a context, a timestep that moves against the direction this generation has been moving
  = a new generation: the context starts over. The direction is learned from the first two steps
  (most samplers lower the timestep, some models raise it);
* ``cache_context(name)`` names the context explicitly and ``reset()`` forgets everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ContextClock:
    """Step index of one guidance context within the current generation."""

    generation: int = 0
    step: int = -1
    last_key: tuple | None = None
    direction: int = 0  # -1, +1, 0 = not learned yet

    def advance(self, key: tuple) -> None:
        if self.last_key is None:
            self.step = 0
        elif key != self.last_key:
            moved = _direction(self.last_key, key)
            if self.direction and moved != self.direction:
                self.generation += 1
                self.step, self.direction = 0, 0
            else:
                self.direction = self.direction or moved
                self.step += 1
        self.last_key = key


def _direction(old: tuple, new: tuple) -> int:
    for a, b in zip(old, new):
        if a != b:
            return 1 if b > a else -1
    return 0


@dataclass
class StepTracker:
    explicit_context: str | None = None
    _last_key: tuple | None = None
    _branch: int = 0
    clocks: dict[str, ContextClock] = field(default_factory=dict)

    def observe(self, key: tuple) -> tuple[str, ContextClock]:
        """Record one step call with timestep values ``key``; return its context name and clock."""
        if self.explicit_context is not None:
            name = self.explicit_context
        else:
            self._branch = self._branch + 1 if key == self._last_key else 0
            name = f"branch{self._branch}"
        self._last_key = key
        clock = self.clocks.setdefault(name, ContextClock())
        clock.advance(key)
        return name, clock

    def reset(self) -> None:
        self._last_key, self._branch = None, 0
        for clock in self.clocks.values():
            clock.generation += 1
            clock.step, clock.last_key, clock.direction = -1, None, 0
