"""Does FreqCa's frequency split help? A plainly written study on the trained reference models, before any preset.

FreqCa (arXiv 2510.08669; code github.com/Tammytcl/FreqCa, ``cache_utils.py``) splits the cached feature into a
low- and a high-frequency band along the tokens and forecasts them apart: the low band reused from the last full
step ("similar but not continuous"), the high band by an order-2 Hermite forecast (sigma 0.71). Its FFT form (the
Qwen-Image code: a 1-D FFT along the flattened tokens, low band |f| <= 0.1 max|f|) needs no token layout, so it is
the one a model-agnostic compiler could use. Here the forecast runs on the host, around the uncompiled model:

* ``output``: the model output is cached (the region of ``taylorseer-lite``; tokens: the packed tokens of Flux, the
  pixels of DiT);
* ``stack``: the residual of the block stack (FreqCa's cumulative residual feature, less the stack input), on the
  DiT models, whose stack carries one stream: the last block's output is replaced by input + forecast residual.

Each forecast runs on the library's schedule (the full steps spread evenly, first and last included) at 10 and 5
of 50, and is scored by the mean PSNR of the final images against the uncached run (40 images, seed 1)::

    python examples/freqca_band_split.py --out docs/results/freqca-cpu/band_split.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from c4d_compile.bench.report import run_meta
from c4d_compile.policies.forecasters import Hermite, Reuse, Taylor
from c4d_compile.policies.forecasters.base import slot_weights
from c4d_compile.policies.schedules.placement import spread_evenly
from c4d_compile.reference import load_reference_model, sample
from c4d_compile.reference.metrics import psnr
from c4d_compile.reference.sampling import class_labels

CUTOFF = 0.1  # FreqCa's low band: |f| <= 0.1 max |f|
# name -> (forecaster of the whole feature or of its high band, forecaster of the low band or None: no split)
FORECASTS = {
    "taylor order 1": (Taylor(order=1), None),
    "taylor order 2": (Taylor(order=2), None),
    "hermite order 2": (Hermite(order=2, sigma=0.71), None),
    "freqca: low reused, high hermite 2": (Hermite(order=2, sigma=0.71), Reuse()),
    "split: low taylor 1, high taylor 2": (Taylor(order=2), Taylor(order=1)),
}
RUNS = [("output", "flux", 1.0), ("output", "flux", 3.0), ("output", "dit", 1.0), ("output", "dit-eps", 1.0),
        ("stack", "dit", 1.0), ("stack", "dit-eps", 1.0)]


def low_band(x: torch.Tensor, token_dims: tuple[int, ...]) -> torch.Tensor:
    """The low-frequency part of ``x`` along its flattened token dims (1-D FFT, float64)."""
    rest = [d for d in range(x.ndim) if d not in token_dims]
    moved = x.permute(*rest, *token_dims)
    flat = moved.reshape(*moved.shape[: len(rest)], -1).double()
    freqs = torch.fft.fftfreq(flat.shape[-1]).abs()
    low = torch.fft.ifft(torch.fft.fft(flat, dim=-1) * (freqs <= CUTOFF * freqs.max()), dim=-1).real
    return low.reshape(moved.shape).permute(*torch.argsort(torch.tensor([*rest, *token_dims]))).to(x.dtype)


class Forecast:
    """The history of one cached feature and its forecast at a step: whole, or per band."""

    def __init__(self, whole_or_high, low):
        self.high, self.low, self.steps, self.values = whole_or_high, low, [], []

    def store(self, step: int, value: torch.Tensor) -> None:
        self.steps.insert(0, float(step))
        self.values.insert(0, value.detach().double())
        del self.steps[4:], self.values[4:]

    def _weighted(self, forecaster, step: int) -> torch.Tensor:
        n = forecaster.num_slots
        weights = slot_weights(forecaster, float(step), self.steps[:n], n)
        return sum(w * v for w, v in zip(weights, self.values))

    def at(self, step: int, token_dims: tuple[int, ...]) -> torch.Tensor:
        high = self._weighted(self.high, step)
        if self.low is None:
            return high
        return high + low_band(self._weighted(self.low, step) - high, token_dims)


def _output_region(model, labels, full, forecast: Forecast, shift: float) -> torch.Tensor:
    step = [0]

    def call(**kwargs):
        i, step[0] = step[0], step[0] + 1
        if i in full:
            out = model.transformer(**kwargs)
            forecast.store(i, out[0] if isinstance(out, tuple) else getattr(out, "sample", out))
            return out
        value = forecast.at(i, (1,) if forecast.values[0].ndim == 3 else (2, 3))
        return (value.float(),)

    return sample(model, labels, 50, seed=1, shift=shift, transformer_call=call)


def _stack_region(model, labels, full, forecast: Forecast) -> torch.Tensor:
    blocks, state = model.transformer.transformer_blocks, {"step": -1}

    def before(module, args, kwargs):
        state["step"] += 1
        state["input"] = args[0] if args else kwargs["hidden_states"]

    def after(module, args, kwargs, out):
        i = state["step"]
        if i in full:
            forecast.store(i, out - state["input"])
            return out
        return state["input"] + forecast.at(i, (1,)).to(out.dtype)

    hooks = [blocks[0].register_forward_pre_hook(before, with_kwargs=True),
             blocks[-1].register_forward_hook(after, with_kwargs=True)]
    try:
        return sample(model, labels, 50, seed=1)
    finally:
        for hook in hooks:
            hook.remove()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 5])
    parser.add_argument("--per-class", type=int, default=4, help="images per digit class")
    parser.add_argument("--out", type=Path, default=Path("docs/results/freqca-cpu/band_split.json"))
    args = parser.parse_args(argv)
    labels = class_labels(args.per_class)
    rows = []
    for region, name, shift in RUNS:
        model = load_reference_model(name)
        reference = sample(model, labels, 50, seed=1, shift=shift)
        for budget in args.budgets:
            full = set(spread_evenly(budget, 50))
            row = {"region": region, "model": name, "shift": shift, "budget": budget, "psnr": {}}
            for label, (high, low) in FORECASTS.items():
                forecast = Forecast(high, low)
                with torch.no_grad():
                    images = (_output_region(model, labels, full, forecast, shift) if region == "output"
                              else _stack_region(model, labels, full, forecast))
                row["psnr"][label] = round(psnr(images, reference).mean().item(), 2)
            rows.append(row)
            print(region, name, f"shift {shift:g}", f"{budget} of 50:", row["psnr"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = run_meta(argv, program="python examples/freqca_band_split.py")
    args.out.write_text(json.dumps({"meta": meta, "cutoff": CUTOFF, "rows": rows}, indent=1) + "\n")
    head = "| region | model (grid) | full of 50 | " + " | ".join(FORECASTS) + " |"
    lines = [head, "|---" * (3 + len(FORECASTS)) + "|"]
    for row in rows:
        grid = f"{row['model']}" + (f", shift {row['shift']:g}" if row["shift"] != 1 else "")
        lines.append(f"| {row['region']} | {grid} | {row['budget']} | "
                     + " | ".join(f"{row['psnr'][k]:.2f}" for k in FORECASTS) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + f"\n\n`{meta['command']}` at {meta['commit'][:7]}.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
