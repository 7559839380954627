"""Measure a caching policy against the uncached compiled model on a bundled model config.

Both sides are compiled with the same lowering; their generations alternate in one process and
the figures are medians, so machine noise hits both alike. The ideal speedup is the ratio of
counted FLOPs of the schedule actually run (``CacheStats.ideal_speedup``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from ..backend import c4d_backend
from ..zoo.tiny_diffusers import TinyModel, first_output, get_tiny_model


def generate(call, spec: TinyModel, inputs: dict, steps: int) -> torch.Tensor:
    """Euler over the model's own timesteps: x <- x + (t_next - t) * prediction (scaled to [0, 1]).

    For flow-matching models this is the flow-matching Euler sampler; for the others it is only a
    loop in which every step's input depends on the previous prediction, which is what caching
    must get right.
    """
    ts = spec.timesteps(steps)
    scale = 1000.0 if spec.timestep_kind != "sigma" else 1.0
    times = [t.float().item() / scale for t in ts] + [0.0]
    x = inputs[spec.latent_key].clone()
    with torch.no_grad():
        for t, t_next, value in zip(times, times[1:], ts):
            pred = first_output(call(**{**inputs, spec.latent_key: x, spec.timestep_key: value}))
            pred = pred[tuple(slice(0, s) for s in x.shape)]  # learned-sigma channels
            x = x + (t_next - t) * pred.to(x.dtype)
    return x


def psnr(result: torch.Tensor, reference: torch.Tensor) -> float:
    mse = torch.mean((result.double() - reference.double()) ** 2).item()
    peak = (reference.max() - reference.min()).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(peak**2 / mse)).item()


@dataclass
class SpeedRow:
    model: str
    policy: str
    options: dict
    device: str
    steps: int
    full_steps: int
    uncached_s: float
    cached_s: float
    measured_speedup: float
    ideal_speedup: float
    ratio: float
    psnr_db: float
    cache_mib: float

    def as_dict(self) -> dict:
        return asdict(self)


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def measure(
    model_name: str,
    policies: list[str],
    steps: int = 28,
    repeats: int = 5,
    lowering: str = "inductor",
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    **overrides,
) -> list[SpeedRow]:
    spec = get_tiny_model(model_name)
    model = spec.build().to(device)
    if dtype != torch.float32:
        model = model.to(dtype)
    inputs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in spec.make_inputs(dtype=dtype).items()}
    # the uncached side is compiled by the same lowering (plain inductor, or the eager graph)
    plain = torch.compile(model, backend=lowering)
    sides = {"uncached": plain}
    backends = {}
    for policy in policies:
        backends[policy] = c4d_backend(policy, lowering=lowering, **overrides)
        sides[policy] = torch.compile(model, backend=backends[policy])
    results, times = {}, {name: [] for name in sides}
    for name, call in tqdm(sides.items(), desc=f"{model_name}: compile + warm-up"):
        results[name] = generate(call, spec, inputs, steps)
    for _ in tqdm(range(repeats), desc=f"{model_name}: alternating runs"):
        for name, call in sides.items():
            if name in backends:
                backends[name].reset(stats=True)
            results[name], seconds = timed(lambda call=call: generate(call, spec, inputs, steps))
            times[name].append(seconds)
    base = statistics.median(times["uncached"])
    rows = []
    for policy, backend in backends.items():
        stats = backend.stats()
        cached = statistics.median(times[policy])
        measured = base / cached
        rows.append(
            SpeedRow(
                model=model_name, policy=policy, options=backend.policy.options(), device=device, steps=steps,
                full_steps=stats.full_steps, uncached_s=base, cached_s=cached, measured_speedup=measured,
                ideal_speedup=stats.ideal_speedup, ratio=measured / stats.ideal_speedup,
                psnr_db=psnr(results[policy], results["uncached"]), cache_mib=stats.cache_bytes / 2**20,
            )
        )
    return rows


def markdown(rows: list[SpeedRow]) -> str:
    head = "| model | policy | steps (full) | uncached s | cached s | measured | ideal | ratio | PSNR dB | cache MiB |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.policy} | {r.steps} ({r.full_steps}) | {r.uncached_s:.3f} | {r.cached_s:.3f} | "
            f"{r.measured_speedup:.2f}x | {r.ideal_speedup:.2f}x | {r.ratio:.2f} | {r.psnr_db:.1f} | "
            f"{r.cache_mib:.2f} |"
        )
    return "\n".join(lines)
