"""SeaCache (Chung et al., CVPR 2026, arXiv 2602.18993; github.com/jiwoogit/SeaCache): TeaCache's probe, the first
block's modulated input, measured after a spectral filter whose pass band follows the noise level.

Why a filter: early in sampling the latent is mostly noise, and the raw change of the input between two calls
is mostly the change of that noise, which the model's output does not follow. The paper's SEA filter is the
optimal linear (Wiener) denoiser of a power-law signal spectrum ``S(f) ~ |f|^-p`` under noise of scale ``b``:
it keeps the frequencies the content dominates at this step. Per axis of the token grid, ``f`` the FFT
frequencies in [-1/2, 1/2)::

    g_t(f) = a_t / (a_t^2 + b_t^2 (|f|^p + eps))          eps = 1e-16
    G_t    = the product of g_t over the axes, divided by its mean over the grid
    F_t    = Re IFFT(G_t * FFT(I_t))                        each channel, float32

The signal is ``sum |F_t - F_ref| / sum |F_ref|`` (the paper's ratio of means over the same elements), which
``SignalSchedule`` accumulates as TeaCache's does. ``(a_t, b_t)`` come from the timestep input
(``policies/schedules/spectral.py``): the PROBE outputs it beside the modulated input, so the filter is built
on the device and a call still reads one scalar (and the timestep once per generation, when its scale is
found). The reference kept for the next call is the filtered input (``signal.filtered``): with ``raw_first``
a generation's first call keeps the unfiltered one, as the paper's scripts do at their forced steps.

The grid: ``grid=`` when given; else from a latent input the probe is computed from, a (B, C, H, W) one whose
H W / N is a square patch area p^2 giving (H/p, W/p), a (B, C, T, H, W) one the same with the smallest
temporal patch (1, 2 or 4) that fits; else a square when the token count is one (Flux's packed tokens);
else a typed error asks for it. Under context parallelism a rank holds a shard of the tokens and the filter
cannot see the grid: refused when the plan is made. ``decision="device"`` is refused by the schedule.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import torch
import torch.fx as fx

from ...errors import ConfigError, NotCacheableError
from ...policies.schedules.signal import Reference, Signal
from ...policies.schedules.spectral import Noise
from ...runtime.step_program import StateTensor, VariantKind
from ..passes.dead_code import is_collective
from ..passes.graph_utils import size_hint, tensor_meta, user_inputs
from .base import SignalHandler, l1_sums, ratio
from .registry import register_signal

FILTERED = "signal.filtered"  # this call's filtered probe: the reference of the next measure
EPS = 1e-16  # keeps the DC gain finite (|f|^p = 0 there)
SIGMA_CLAMP = 1e-6  # σ = 0 or 1 would leave a = 0 or b = 0: a filter of zeros or a flat one
VP_BETAS = (1e-4, 0.02, 1000)  # DDPM's linear schedule (DiT, PixArt-α): first, last, count
TEMPORAL_PATCHES = (1, 2, 4)


@functools.cache
def _alpha_bar(device: torch.device) -> torch.Tensor:
    first, last, count = VP_BETAS
    return torch.cumprod(1 - torch.linspace(first, last, count, dtype=torch.float64, device=device), 0)


def noise_scales(timestep: torch.Tensor, noise: Noise, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)`` of ``x_t = a x_0 + b ε`` at this timestep (its first value over ``scale``), 0-d float64 tensors on
    its device. ``"vp"``: ᾱ at the DDPM step ``1000 t / scale``, linear between integer steps."""
    u = timestep.reshape(-1)[0].double() / scale
    if noise is Noise.FLOW:
        sigma = u.clamp(SIGMA_CLAMP, 1 - SIGMA_CLAMP)
        return 1 - sigma, sigma
    table = _alpha_bar(u.device)
    step = (u * len(table)).clamp(0, len(table) - 1)
    low = step.floor().long()
    high = (low + 1).clamp(max=len(table) - 1)
    weight = step - low
    alpha_bar = table[low] * (1 - weight) + table[high] * weight
    return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()


def sea_response(grid: tuple[int, ...], a: torch.Tensor, b: torch.Tensor, power: float) -> torch.Tensor:
    """``G_t`` on the frequencies ``rfftn`` keeps (the last axis' non-negative half), mean 1 over the whole grid.
    G is a product of one factor per axis, so its mean is the product of theirs: each is divided by its own."""
    def gain(f: torch.Tensor) -> torch.Tensor:
        return a / (a * a + b * b * (f ** power + EPS))

    response = None
    for axis, size in enumerate(grid):
        full = torch.fft.fftfreq(size, dtype=torch.float64, device=a.device).abs()
        kept = torch.fft.rfftfreq(size, dtype=torch.float64, device=a.device) if axis == len(grid) - 1 else full
        factor = (gain(kept) / gain(full).mean()).reshape([-1 if i == axis else 1 for i in range(len(grid))])
        response = factor if response is None else response * factor
    return response


def sea_filter(x: torch.Tensor, grid: tuple[int, ...], a: torch.Tensor, b: torch.Tensor,
               power: float) -> torch.Tensor:
    """``x`` (..., N, C), N = prod(grid) tokens in row-major grid order: each channel filtered over the grid, float32.
    G is real and even in f, so the real FFT gives ``Re IFFT(G FFT(x))`` at half the work."""
    dims = tuple(range(-len(grid) - 1, -1))
    cells = x.float().reshape(*x.shape[:-2], *grid, x.shape[-1])
    response = sea_response(grid, a, b, power).to(torch.float32)[..., None]
    return torch.fft.irfftn(torch.fft.rfftn(cells, dim=dims) * response, s=grid, dim=dims).reshape(x.shape)


def grid_of(gm: fx.GraphModule, probed: fx.Node, tokens: int, given: tuple[int, ...]) -> tuple[int, ...]:
    """The token grid of the probed value: ``given``, or found from the latent inputs or a square token count."""
    if given:
        if math.prod(given) != tokens:
            raise ConfigError(f"grid={given} has {math.prod(given)} cells and the probed value {probed.name} has "
                              f"{tokens} tokens: give a grid whose sizes multiply to {tokens}")
        return given
    found = {grid for node in _latent_inputs(gm, probed)
             if (grid := _from_latent(tuple(size_hint(d) for d in tensor_meta(node).shape), tokens))}
    if len(found) == 1:
        return found.pop()
    side = math.isqrt(tokens)
    if not found and side * side == tokens:
        return side, side
    fits = f" (the latent inputs fit {sorted(found)})" if found else ""
    raise ConfigError(f"signal 'spectral-input' filters over the latent's token grid, and the {tokens} tokens of "
                      f"{probed.name} do not say which{fits}: give grid=(h, w) or grid=(t, h, w) whose sizes "
                      f"multiply to {tokens}")


def _latent_inputs(gm: fx.GraphModule, probed: fx.Node) -> list[fx.Node]:
    """Floating-point (B, C, H, W) or (B, C, T, H, W) inputs of the graph that the probed value is computed from."""
    ancestors, todo = set(), [probed]
    while todo:
        node = todo.pop()
        if node not in ancestors:
            ancestors.add(node)
            todo += node.all_input_nodes
    return [n for n in user_inputs(gm) if n in ancestors and (meta := tensor_meta(n)) is not None
            and meta.is_floating_point() and meta.dim() in (4, 5)]


def _from_latent(shape: tuple[int, ...], tokens: int) -> tuple[int, ...] | None:
    frames, (height, width) = (shape[2] if len(shape) == 5 else 1), shape[-2:]
    for patch in TEMPORAL_PATCHES if len(shape) == 5 else (1,):
        area, rest = divmod(frames // patch * height * width, tokens)  # the spatial patch's area
        side = math.isqrt(area)
        square = not rest and area and side * side == area
        if frames % patch == 0 and square and height % side == 0 and width % side == 0:
            spatial = (height // side, width // side)
            return (frames // patch, *spatial) if len(shape) == 5 else spatial
    return None


@register_signal(Signal.SPECTRAL_INPUT)
class SpectralInput(SignalHandler):
    grid: tuple[int, ...] = ()  # the token grid, found by ``find`` for its graph
    power: float = 2.0  # the spectrum's falloff: the schedule's, else 2 on an (h, w) grid and 3 on a (t, h, w) one

    def find(self, gm, analysis, policy, features):
        collectives = [n.name for n in gm.graph.nodes if is_collective(n)]
        if collectives:
            raise ConfigError(f"signal 'spectral-input' (seacache) filters over the whole token grid, and this graph "
                              f"exchanges tokens between ranks ({len(collectives)} collectives: context parallelism), "
                              "so a rank holds a shard of it: run it in one process, or use teacache "
                              "(signal='modulated-input') under context parallelism")
        probe, features = super().find(gm, analysis, policy, features)
        probed = next(n for n in gm.graph.nodes if n.name == probe.values[0][0])
        shape = tuple(size_hint(d) for d in tensor_meta(probed).shape)
        if len(shape) < 2:
            raise NotCacheableError(f"the modulated input {probed.name} {list(shape)} has no token axis to filter")
        self.grid = grid_of(gm, probed, shape[-2], self.rule.grid)
        self.power = self.rule.power or (2.0 if len(self.grid) == 2 else 3.0)
        where = f"{probe.description}, over a {'x'.join(map(str, self.grid))} token grid, |f|^-{self.power:g}"
        return dataclasses.replace(probe, description=where), features

    def reference_writer(self, plan):
        return VariantKind.PROBE if self.rule.reference is Reference.PREVIOUS else VariantKind.FULL

    def state(self, plan):  # the filtered reference; the timestep needs none
        return [StateTensor(plan.reference_names[0], plan.probe_shapes[0], torch.float32, "signal",
                            written_by=(self.reference_writer(plan),), read_by=(), source=FILTERED)]

    def before(self, plan, values, state, reduce=None):
        probe, timestep = (values[name] for name in plan.signal_names)
        scale = self._scale(timestep, state)
        reference = state.tensors.get(plan.reference_names[0])
        if reference is None and self.rule.raw_first:
            values[FILTERED] = probe
            return None
        if probe.shape[-2] != math.prod(self.grid):  # a dynamic-shape graph called at another size
            raise ConfigError(f"signal 'spectral-input' was planned for a {self.grid} token grid and this call has "
                              f"{probe.shape[-2]} tokens: give grid= for this size (one size per compiled graph)")
        a, b = noise_scales(timestep, self.rule.noise, scale)
        filtered = values[FILTERED] = sea_filter(probe, self.grid, a, b, self.power)
        if reference is None:
            return None
        return ratio(*l1_sums([filtered], [reference]), reduce)

    def _scale(self, timestep: torch.Tensor, state) -> float:
        """σ = timestep / this: the schedule's, else 1 when the context's first timestep is at most 1, else 1000."""
        if self.rule.timestep_scale:
            return self.rule.timestep_scale
        scale = state.scalars.get("timestep_scale")
        if scale is None:  # the first call of a context's generation: one host read
            scale = state.scalars["timestep_scale"] = 1.0 if float(timestep.reshape(-1)[0]) <= 1 else 1000.0
        return scale
