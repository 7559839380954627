"""``c4d demo``: digits from a trained reference model, uncached vs cached vs fewer steps, side by side.

Prints the measured and ideal speedup and the fidelity of the cached run and of the honest baseline
(the uncached model with ceil(the cache's FLOP-equivalent steps)), and saves the picture.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .bench.matrix import equal_compute
from .compiler.backend import c4d_backend
from .reference import metrics
from .reference.registry import load_classifier, load_reference_model
from .reference.sampling import class_labels, sample

SCALE = 4  # 16x16 digits drawn at 64x64


def _tile(images: torch.Tensor) -> np.ndarray:
    """(B, 1, 16, 16) in [-1, 1] -> one row of uint8 tiles."""
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0]
    pixels = pixels.repeat_interleave(SCALE, 1).repeat_interleave(SCALE, 2)
    return torch.cat(list(pixels), dim=1).numpy()


def save_grid(rows: list[tuple[str, torch.Tensor]], path: Path) -> None:
    label_width, gap = 190, 4
    tiles = [_tile(images) for _, images in rows]
    height = sum(t.shape[0] + gap for t in tiles)
    canvas = Image.new("L", (label_width + tiles[0].shape[1], height), color=255)
    draw = ImageDraw.Draw(canvas)
    y = 0
    for (label, _), tile in zip(rows, tiles):
        canvas.paste(Image.fromarray(tile), (label_width, y))
        draw.text((4, y + tile.shape[0] // 2 - 6), label, fill=0)
        y += tile.shape[0] + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def run_demo(
    model_name: str = "flux",
    policy: str = "taylorseer",
    steps: int = 50,
    per_class: int = 2,
    repeats: int = 3,
    lowering: str = "eager",
    out: str = "bench-out/demo.png",
    **overrides,
) -> dict:
    model = load_reference_model(model_name)
    labels = class_labels(per_class)
    backend = c4d_backend(policy, lowering=lowering, **{"num_steps": steps, **overrides})
    cached_call = torch.compile(model.transformer, backend=backend)
    plain_call = torch.compile(model.transformer, backend=lowering)
    runs = {
        "uncached": lambda: sample(model, labels, steps, transformer_call=plain_call),
        "cached": lambda: sample(model, labels, steps, transformer_call=cached_call),
    }
    images, times = {}, {name: [] for name in runs}
    for name, run in runs.items():
        images[name] = run()  # compile + warm-up
    for _ in range(repeats):  # alternate, so noise hits both sides alike
        for name, run in runs.items():
            backend.reset(stats=True)
            start = time.perf_counter()
            images[name] = run()
            times[name].append(time.perf_counter() - start)
    full = backend.stats().full_steps
    baseline = equal_compute(steps, backend.stats().ideal_speedup)  # a cached step is not free
    fewer = sample(model, labels, baseline)
    classifier = load_classifier()
    result = {
        "model": model_name,
        "policy": policy,
        "steps": steps,
        "full_steps": full,
        "baseline_steps": baseline,
        "measured_speedup": statistics.median(times["uncached"]) / statistics.median(times["cached"]),
        "ideal_speedup": backend.stats().ideal_speedup,
        "psnr_cached_db": metrics.psnr(images["cached"], images["uncached"]).mean().item(),
        "psnr_fewer_steps_db": metrics.psnr(fewer, images["uncached"]).mean().item(),
        "accuracy_cached": metrics.class_accuracy(images["cached"].clamp(-1, 1), labels, classifier),
        "picture": out,
    }
    save_grid(
        [
            (f"uncached, {steps} steps", images["uncached"]),
            (f"{policy}, {full} of {steps} full", images["cached"]),
            (f"uncached, {baseline} steps", fewer),
        ],
        Path(out),
    )
    return result
