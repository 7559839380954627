"""diffusers' own caches (``diffusers.hooks``) as bench rows, applied the way its pipelines apply them.

``enable_cache(config)`` on a private copy of the transformer (models without ``CacheMixin``, such as
DiT, get the same ``apply_*`` hook function it would call), every call inside
``cache_context("cond")`` as the pipelines do, and the stateful hooks reset before each generation.
PAB and FasterCache decide by timestep and read it through a callback, fed here from the call's own
``timestep`` kwarg on diffusers' 0..1000 scale. MagCache needs per-model magnitude ratios: one
calibration generation records them first (its documented ``calibrate=True`` mode).
"""

from __future__ import annotations

import ast
import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..methods import Prepared
from ..workloads import Workload
from .common import private_transformer, reachable_tensor_bytes

_CONTEXT = "cond"


def _hooks():
    from diffusers import hooks

    return {
        hooks.FirstBlockCacheConfig: hooks.apply_first_block_cache,
        hooks.TaylorSeerCacheConfig: hooks.apply_taylorseer_cache,
        hooks.MagCacheConfig: hooks.apply_mag_cache,
        hooks.PyramidAttentionBroadcastConfig: hooks.apply_pyramid_attention_broadcast,
        hooks.FasterCacheConfig: hooks.apply_faster_cache,
    }


def enable_config(transformer: nn.Module, config: Any) -> None:
    from diffusers.hooks import HookRegistry
    from diffusers.models.cache_utils import CacheMixin

    if isinstance(transformer, CacheMixin):
        transformer.enable_cache(config)
        return
    _hooks()[type(config)](transformer, config)  # what enable_cache would do, for a model without the mixin
    HookRegistry.check_if_exists_or_initialize(transformer).invalidate_child_registries_cache()
    transformer._cache_config = config  # so that CacheMixin.disable_cache, called unbound, finds it


def disable_config(transformer: nn.Module) -> None:
    from diffusers.models.cache_utils import CacheMixin

    CacheMixin.disable_cache(transformer)


def reset_hooks(transformer: nn.Module) -> None:
    from diffusers.hooks import HookRegistry

    HookRegistry.check_if_exists_or_initialize(transformer).reset_stateful_hooks(recurse=True)


def _in_context(transformer: nn.Module, fn: Callable[..., Any]) -> Callable[..., Any]:
    from diffusers.models.cache_utils import CacheMixin

    def call(**kwargs):
        with CacheMixin.cache_context(transformer, _CONTEXT):
            return fn(**kwargs)

    return call


def _block_identifiers(transformer: nn.Module) -> list[str]:
    """Every block of every ModuleList child: TaylorSeer then forecasts each block's output and skips all of
    them on predicted steps, the compute c4d's ``taylorseer`` saves (which forecasts the blocks' branches)."""
    return [rf"{name}\.\d+" for name, child in transformer.named_children() if isinstance(child, nn.ModuleList)]


class _Timestep:
    """The current call's timestep on the 0..1000 scale, for PAB's and FasterCache's callbacks."""

    def __init__(self, scale: float):
        self.scale, self.value = scale, 1000.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(**kwargs):
            self.value = float(kwargs["timestep"].flatten()[0]) * self.scale
            return fn(**kwargs)

        return call

    def __call__(self) -> float:
        return self.value


@dataclass(frozen=True)
class DiffusersCache:
    """``make_config(workload, transformer, steps, timestep_callback) -> config``: one diffusers cache config."""

    label: str
    make_config: Callable[[Workload, nn.Module, int, Callable[[], float]], Any]
    describe: str
    family: str = "diffusers"

    def prepare(self, workload: Workload, lowering: str, steps: int) -> Prepared:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
        transformer = private_transformer(workload)
        clock = _Timestep(workload.timestep_scale)
        enable_config(transformer, self.make_config(workload, transformer, steps, clock))
        call = clock.wrap(_in_context(transformer, transformer))
        # Not compiled: under torch.compile the hooks' graph break makes Dynamo give up on the model's
        # forward and mark its code to be skipped, which would leave every other row of the model (all
        # sharing that code) running uncompiled. So the row runs as plain modules, and is timed against
        # the uncached model run the same way.
        return Prepared(
            call=call, steps=steps, settings={"config": self.describe}, begin=lambda: reset_hooks(transformer),
            cache_bytes=lambda: reachable_tensor_bytes(*hook_registries(transformer)), flop_call=call,
            close=lambda: disable_config(transformer), compiled=False,
        )


def hook_registries(transformer: nn.Module) -> list[Any]:
    return [m._diffusers_hook for m in transformer.modules() if hasattr(m, "_diffusers_hook")]


def _mag_ratios(workload: Workload, transformer: nn.Module, steps: int) -> list[float]:
    """Run one generation in MagCache's calibration mode and read the ratios it prints for the user."""
    from diffusers.hooks import MagCacheConfig

    enable_config(transformer, MagCacheConfig(calibrate=True, num_inference_steps=steps))
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), torch.no_grad():
            workload.run(_in_context(transformer, transformer), steps)
    finally:
        disable_config(transformer)
    lines = printed.getvalue().splitlines()
    marker = max(i for i, line in enumerate(lines) if "Calibration Complete" in line)
    return ast.literal_eval(lines[marker + 1])


def _first_block(workload, transformer, steps, clock):
    from diffusers.hooks import FirstBlockCacheConfig

    return FirstBlockCacheConfig(threshold=0.05)


def _taylorseer(workload, transformer, steps, clock):
    from diffusers.hooks import TaylorSeerCacheConfig

    return TaylorSeerCacheConfig(cache_interval=6, disable_cache_before_step=3, max_order=1,
                                 taylor_factors_dtype=torch.float32, cache_identifiers=_block_identifiers(transformer))


def _taylorseer_lite(workload, transformer, steps, clock):
    from diffusers.hooks import TaylorSeerCacheConfig

    return TaylorSeerCacheConfig(cache_interval=5, disable_cache_before_step=3, max_order=2,
                                 taylor_factors_dtype=torch.float32, use_lite_mode=True)


def _mag_cache(workload, transformer, steps, clock):
    from diffusers.hooks import MagCacheConfig

    return MagCacheConfig(threshold=0.06, max_skip_steps=3, retention_ratio=0.2, num_inference_steps=steps,
                          mag_ratios=_mag_ratios(workload, transformer, steps))


def _pab(workload, transformer, steps, clock):
    from diffusers.hooks import PyramidAttentionBroadcastConfig

    return PyramidAttentionBroadcastConfig(spatial_attention_block_skip_range=2, current_timestep_callback=clock)


def _faster_cache(workload, transformer, steps, clock):
    from diffusers.hooks import FasterCacheConfig

    return FasterCacheConfig(spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(-1, 681),
                             current_timestep_callback=clock, attention_weight_callback=lambda _: 0.5,
                             is_guidance_distilled=True)


def signal_caches_at(threshold: float) -> list[DiffusersCache]:
    """diffusers' signal-driven caches at one threshold: FirstBlockCache (the same relative L1 of the first
    block's residual as c4d's fbcache) and MagCache (its own accumulated-ratio error, calibrated ratios)."""

    def first_block(workload, transformer, steps, clock):
        from diffusers.hooks import FirstBlockCacheConfig

        return FirstBlockCacheConfig(threshold=threshold)

    def mag_cache(workload, transformer, steps, clock):
        from diffusers.hooks import MagCacheConfig

        return MagCacheConfig(threshold=threshold, max_skip_steps=3, retention_ratio=0.2, num_inference_steps=steps,
                              mag_ratios=_mag_ratios(workload, transformer, steps))

    return [DiffusersCache(f"diffusers-fbcache τ{threshold:g}", first_block, f"FirstBlockCacheConfig(threshold="
                           f"{threshold:g})"),
            DiffusersCache(f"diffusers-magcache τ{threshold:g}", mag_cache, f"MagCacheConfig(threshold={threshold:g}, "
                           "max_skip_steps=3, retention_ratio=0.2, calibrated ratios)")]


def taylorseer_schedule(budget: int, steps: int) -> tuple[int, int]:
    """(disable_cache_before_step, cache_interval) of diffusers' TaylorSeer that computes ``budget`` of
    ``steps`` steps (it computes iff s < W or (s - W - 1) % N == 0): the longest warm-up up to its default 3
    that hits the budget exactly, else the closest count below it."""
    best = (1, steps, 0)
    for warmup in (3, 2, 1):
        for interval in range(1, steps + 1):
            count = sum(s < warmup or (s - warmup - 1) % interval == 0 for s in range(steps))
            if count == budget:
                return warmup, interval
            if count < budget and count > best[2]:
                best = (warmup, interval, count)
    return best[0], best[1]


def taylorseer_at(budget: int, lite: bool) -> DiffusersCache:
    """diffusers' TaylorSeer (every block, order 1) or its lite mode (order 2) at ``budget`` full steps."""
    name = "diffusers-taylorseer-lite" if lite else "diffusers-taylorseer"

    def make(workload, transformer, steps, clock):
        from diffusers.hooks import TaylorSeerCacheConfig

        warmup, interval = taylorseer_schedule(budget, steps)
        if lite:
            return TaylorSeerCacheConfig(cache_interval=interval, disable_cache_before_step=warmup, max_order=2,
                                         taylor_factors_dtype=torch.float32, use_lite_mode=True)
        return TaylorSeerCacheConfig(cache_interval=interval, disable_cache_before_step=warmup, max_order=1,
                                     taylor_factors_dtype=torch.float32,
                                     cache_identifiers=_block_identifiers(transformer))

    return DiffusersCache(f"{name}@{budget}", make, f"{name} schedule at {budget} full steps (order "
                          f"{2 if lite else 1})")


DIFFUSERS_METHODS = (
    DiffusersCache("diffusers-fbcache", _first_block, "FirstBlockCacheConfig(threshold=0.05)"),
    DiffusersCache("diffusers-taylorseer", _taylorseer,
                   "TaylorSeerCacheConfig(cache_interval=6, disable_cache_before_step=3, max_order=1, "
                   "float32 factors, every block cached)"),
    DiffusersCache("diffusers-taylorseer-lite", _taylorseer_lite,
                   "TaylorSeerCacheConfig(cache_interval=5, disable_cache_before_step=3, max_order=2, "
                   "float32 factors, use_lite_mode=True)"),
    DiffusersCache("diffusers-magcache", _mag_cache, "MagCacheConfig(threshold=0.06, max_skip_steps=3, "
                   "retention_ratio=0.2, calibrated ratios)"),
    DiffusersCache("diffusers-pab", _pab, "PyramidAttentionBroadcastConfig(spatial skip 2, timesteps 100..800)"),
    DiffusersCache("diffusers-fastercache", _faster_cache,
                   "FasterCacheConfig(spatial skip 2, timesteps -1..681, weight 0.5, guidance-distilled)"),
)
