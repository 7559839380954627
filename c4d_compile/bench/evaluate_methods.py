"""The methods ``c4d evaluate`` compares, each applied to the user's pipeline and undone after it: a c4d preset
(``enable_cache_with``), ``auto`` (calibrated first, on a seed never scored), and the peers' caches applied the
way their libraries apply them to a pipeline (diffusers' ``transformer.enable_cache(config)``, cache-dit's
``cache_dit.enable_cache(pipe)``), with the configurations of the bench's peer rows.

A peer reports no compute, so its ideal speedup comes from FLOPs counted in the denoisers over one generation
(``denoiser_flops``), against the uncached pipeline's count; a c4d method's from its backend's stats.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from ..calibration import calibrate
from ..compiler.backend import c4d_backend
from ..compiler.flop_formulas import flop_counter
from ..errors import InvalidValueError
from ..pipelines import DENOISERS, enable_cache_with
from ..policies import get_policy, list_policies
from .peers.cache_dit_caches import CACHE_DIT_METHODS
from .peers.common import reachable_tensor_bytes
from .peers.diffusers_caches import DIFFUSERS_METHODS, disable_config, enable_config, hook_registries, reset_hooks


def _nothing() -> None:
    return None


def denoisers(pipe: Any) -> list[str]:
    return [name for name in DENOISERS if getattr(pipe, name, None) is not None]


@dataclass
class Applied:
    """A method set up on the pipeline."""

    settings: dict
    undo: Callable[[], None]
    compiled: bool = True  # peers run as plain modules: timed against the uncached pipeline run the same way
    begin: Callable[[], None] = _nothing  # before every generation
    reset_stats: Callable[[], None] = _nothing  # after the warm-up generation
    stats: Callable[[], Any] = _nothing  # c4d: the backend's CacheStats
    cache_bytes: Callable[[], int | None] = _nothing  # state held after a generation
    around: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext  # each generation inside


@dataclass(frozen=True)
class Session:
    """What every method is applied with."""

    steps: int
    lowering: str
    out: Path
    calibration_run: Callable[[Any], torch.Tensor]  # run(pipe) -> final sample, on a seed never scored
    overrides: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # every c4d preset's
    budget: int | None = None
    auto_effort: str = "default"
    progress: bool = True

    def auto_budget(self) -> int:
        """``--budget``, else the presets' default density: one full step in 5 (at least 2)."""
        return self.budget or max(2, math.ceil(self.steps / 5))


def compile_plain(pipe: Any, lowering: str, compiled: dict[str, Any]) -> Callable[[], None]:
    """The uncached pipeline: each denoiser under ``torch.compile(backend=lowering)``, the same compiled module
    every time (``compiled`` keeps them), so the reference and every fewer-steps row share its code."""
    given = {name: getattr(pipe, name) for name in denoisers(pipe)}
    for name, module in given.items():
        if name not in compiled:
            compiled[name] = torch.compile(module, backend=lowering)
        setattr(pipe, name, compiled[name])
    return lambda: [setattr(pipe, name, module) for name, module in given.items()] and None


@dataclass(frozen=True)
class C4D:
    preset: str
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    family: str = "c4d"

    @property
    def label(self) -> str:
        return self.preset

    def options(self, session: Session) -> dict[str, Any]:
        budget = {"budget": session.budget} if session.budget is not None else {}
        return {**budget, **session.overrides, **self.extra}

    def check(self, session: Session) -> None:
        get_policy(self.preset, **self.options(session))  # a typed error before anything runs

    def apply(self, pipe: Any, session: Session) -> Applied:
        backend = c4d_backend(self.preset, lowering=session.lowering, **self.options(session))
        undo = enable_cache_with(pipe, backend)
        return Applied(
            settings={**backend.policy.options(), "schedule": backend.policy.schedule.describe()},
            undo=lambda: _undo_c4d(backend, undo), reset_stats=lambda: backend.reset(stats=True),
            stats=backend.stats, cache_bytes=lambda: backend.stats().cache_bytes)


def _undo_c4d(backend: Any, undo: Callable[[], None]) -> None:
    backend.reset()  # free the cache state now, not when Dynamo drops the compiled code
    undo()


@dataclass(frozen=True)
class Auto:
    """``policy="auto"`` calibrated on the pipeline at the session's budget; the schedule file is kept in the
    output folder."""

    family: str = "c4d"
    label: str = "auto"

    def check(self, session: Session) -> None:
        if not 2 <= session.auto_budget() <= session.steps:
            raise InvalidValueError("budget", session.auto_budget(), f"auto: an integer in 2..{session.steps}")

    def apply(self, pipe: Any, session: Session) -> Applied:
        budget = session.auto_budget()
        result = calibrate(pipe, session.calibration_run, "auto", budget=budget, effort=session.auto_effort,
                           lowering=session.lowering, progress=session.progress,
                           out=session.out / f"auto-{budget}of{session.steps}.json")
        applied = C4D("auto", MappingProxyType({"schedule": str(result.path)})).apply(
            pipe, Session(session.steps, session.lowering, session.out, session.calibration_run))
        cost = result.cost
        applied.settings.update(chosen=result.candidate.label, full_steps=list(result.full_steps), budget=budget,
                                schedule_file=str(result.path), calibration_seconds=round(cost.seconds, 1),
                                calibration_generations=round(cost.generations, 1))
        return applied


@dataclass(frozen=True)
class DiffusersPeer:
    """One of the bench's diffusers cache configurations, enabled on every denoiser of the pipeline."""

    label: str
    family: str = "diffusers"

    def check(self, session: Session) -> None:
        return None

    def apply(self, pipe: Any, session: Session) -> Applied:
        method = {m.label: m for m in DIFFUSERS_METHODS}[self.label]
        modules, restore = private_denoisers(pipe)

        def clock() -> float:  # PAB / FasterCache: the pipeline's current timestep (0..1000)
            value = getattr(pipe, "current_timestep", None)
            return 1000.0 if value is None else float(torch.as_tensor(value).flatten()[0])

        try:
            for module in modules:
                enable_config(module, method.make_config(None, module, session.steps, clock))
        except Exception:
            restore()
            raise

        def around() -> contextlib.ExitStack:
            # diffusers' hooks refuse a call outside a cache context; pipelines that name none (SD3, PixArt...)
            # get "cond" for the whole generation, and those that do name theirs inside it.
            from diffusers.models.cache_utils import CacheMixin

            stack = contextlib.ExitStack()
            for m in modules:
                stack.enter_context(CacheMixin.cache_context(m, "cond"))
            return stack

        return Applied(
            settings={"config": method.describe}, compiled=False, around=around,
            undo=lambda: ([disable_config(m) for m in modules], restore()) and None,
            begin=lambda: [reset_hooks(m) for m in modules] and None,
            cache_bytes=lambda: reachable_tensor_bytes(*[r for m in modules for r in hook_registries(m)]))


@dataclass(frozen=True)
class CacheDitPeer:
    """One of the bench's cache-dit configurations, through ``cache_dit.enable_cache(pipe, ...)``."""

    label: str
    family: str = "cache-dit"

    def check(self, session: Session) -> None:
        return None

    def apply(self, pipe: Any, session: Session) -> Applied:
        os.environ.setdefault("CACHE_DIT_LOG_LEVEL", "error")  # read when cache_dit is first imported
        import cache_dit

        method = {m.label: m for m in CACHE_DIT_METHODS}[self.label]
        cache, calibrator = method.configs(session.steps)
        modules, restore = private_denoisers(pipe)
        try:
            cache_dit.enable_cache(pipe, cache_config=cache, calibrator_config=calibrator)
        except Exception:
            restore()
            raise
        return Applied(
            settings=method.settings(session.steps), compiled=False,
            undo=lambda: (cache_dit.disable_cache(pipe), restore()) and None,
            cache_bytes=lambda: reachable_tensor_bytes(*[getattr(m, "_context_manager", None) for m in modules]))


def _peer_names() -> dict[str, type]:
    # diffusers' MagCache row records its ratios through the bench's own sampling loop: not on a pipeline
    return {**{m.label: DiffusersPeer for m in DIFFUSERS_METHODS if m.label != "diffusers-magcache"},
            **{m.label: CacheDitPeer for m in CACHE_DIT_METHODS}}


def resolve_methods(names: list[str]) -> list[C4D | Auto | DiffusersPeer | CacheDitPeer]:
    """Each name as a method: a c4d preset, ``auto``, or a peer (``c4d evaluate --help`` lists them)."""
    peers = _peer_names()
    methods = []
    for name in dict.fromkeys(names):
        if name == "auto":
            methods.append(Auto())
        elif name in list_policies():
            methods.append(C4D(name))
        elif name in peers:
            methods.append(peers[name](name))
        else:
            presets = ", ".join(p for p in list_policies() if p != "auto")
            raise InvalidValueError("method", name, f"a c4d preset ({presets}), auto, or a peer ({', '.join(peers)})")
    if not methods:
        raise InvalidValueError("methods", names, "at least one method")
    return methods


@contextlib.contextmanager
def denoiser_flops(pipe: Any) -> Iterator[list[int]]:
    """FLOPs counted inside the pipeline's denoisers only (not its text encoders or VAE) while the block runs:
    ``[0]`` of what it yields, once the block is left. One counter over the whole call, read per module: a counter
    entered inside a denoiser would meet cache-dit's wrapped blocks first and recurse through them."""
    names = {type(getattr(pipe, name)).__name__ for name in denoisers(pipe)}
    total = [0]
    with flop_counter() as counter:
        yield total
    total[0] = sum(sum(counter.get_flop_counts().get(name, {}).values()) for name in names)


@contextlib.contextmanager
def peak_bytes(pipe: Any, read: Callable[[], int | None]) -> Iterator[list[int | None]]:
    """The most ``read()`` gave after any denoiser call while the block runs (``[0]`` of what it yields): the
    cache memory of a generation, also for caches that free their state when the pipeline call ends."""
    peak: list[int | None] = [None]

    def after(module, args, output):
        value = read()
        if value is not None:
            peak[0] = max(peak[0] or 0, value)

    handles = [getattr(pipe, name).register_forward_hook(after) for name in denoisers(pipe)]
    try:
        yield peak
    finally:
        for handle in handles:
            handle.remove()


def private_denoisers(pipe: Any) -> tuple[list[torch.nn.Module], Callable[[], None]]:
    """Deep copies of the denoisers set on the pipeline, and the undo that puts the originals back: a peer
    patches the modules it is given (and cache-dit leaves patched forwards behind after ``disable_cache``), so
    each peer gets its own copies, as in the bench. It costs one more copy of the denoiser weights."""
    originals = {name: getattr(pipe, name) for name in denoisers(pipe)}
    for name, module in originals.items():
        setattr(pipe, name, copy.deepcopy(module))
    copies = [getattr(pipe, name) for name in originals]
    return copies, lambda: [setattr(pipe, name, module) for name, module in originals.items()] and None
