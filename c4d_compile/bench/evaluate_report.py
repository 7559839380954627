"""What ``c4d evaluate`` writes: ``evaluate.md`` (the table and what it did not measure), ``evaluate.json`` (every
row, with ``run_meta``) and ``grid.png`` (rows: the table's rows, columns: prompt x seed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .evaluate import EvalResult, EvalRow
from .evaluate_scorers import SCORES
from .report import num_text, run_meta, save_figure

_HEAD = ("| method | steps (FLOP-equivalent) | s / gen | measured | ideal | PSNR mean / worst dB | SSIM "
         "| uncached at equal compute: PSNR (steps) | gain dB | {scores} | cache MiB |")


def _line(r: EvalRow, scores: list[str]) -> str:
    computed = f"{r.flop_steps:.0f}" if abs(r.flop_steps - round(r.flop_steps)) < 0.005 else f"{r.flop_steps:.2f}"
    baseline = "–" if r.baseline_steps is None else f"{r.baseline_psnr:.2f} ({r.baseline_steps})"
    extra = " | ".join(num_text(r.scores.get(k), ".3f") for k in scores)
    return (f"| {r.method} | {r.steps} ({computed}) | {r.seconds:.3f} | {r.measured_speedup:.2f}x | "
            f"{r.ideal_speedup:.2f}x | {num_text(r.psnr_mean, '.2f')} / {num_text(r.psnr_worst, '.2f')} | "
            f"{num_text(r.ssim_mean, '.4f')} | {baseline} | {num_text(r.gain_db, '+.2f')} | {extra} | "
            f"{num_text(r.cache_mib, '.2f')} |")


def markdown(result: EvalResult) -> str:
    config = result.config
    keys = list(SCORES)
    head = _HEAD.format(scores=" | ".join(SCORES[k][0] for k in keys))
    where = f", {result.device}" if result.device else ""
    lines = [f"### {result.target}: {config.steps} steps, {len(config.prompts)} prompt(s) x {len(config.seeds)} "
             f"seed(s), {config.lowering} lowering{where}", "", head, "|" + "---|" * (head.count("|") - 1)]
    lines += [_line(r, keys) for r in result.rows]
    lines += ["", f"PSNR and SSIM against the uncached {result.kind} of the same prompt and seed (data range: "
              f"{result.peak}); measured speedup: the uncached pipeline's time per generation over the row's (peers, "
              "which run uncompiled, against `uncached, not compiled`); ideal: FLOPs of the denoisers; gain: PSNR "
              "above the uncached pipeline run with ceil(the row's FLOP-equivalent steps)."]
    lines += [f"- {SCORES[k][0]}: {reason}" for k, reason in result.absent.items()]
    lines += [f"- skipped {label}: {reason}" for label, reason in result.skipped.items()]
    return "\n".join(lines)


def write_json(result: EvalResult, path: Path, argv: list[str]) -> None:
    def clean(value):  # JSON has no infinity
        if isinstance(value, float) and math.isinf(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    data = {"meta": run_meta(argv), **clean(result.as_dict())}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def plot_grid(result: EvalResult, path: Path) -> str | None:
    """The grid, or why there is none (returned, nothing written)."""
    if any(t is None for tiles in result.tiles.values() for t in tiles):
        return (f"no image grid: the pipeline returns latents of shape {result.output_shape}, without two spatial "
                "dims to show")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result.rows if r.method in result.tiles]
    cols = len(result.generations)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.0 * cols + 1.2, 2.0 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j, tile in enumerate(result.tiles[row.method]):
            ax = axes[i][j]
            ax.imshow(tile.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                prompt, seed = result.generations[j]
                ax.set_title(f"{prompt[:28]}{'…' if len(prompt) > 28 else ''} / {seed}", fontsize=7)
            if j == 0:
                psnr = "" if math.isinf(row.psnr_mean) else f"\n{row.psnr_mean:.1f} dB"
                ax.set_ylabel(f"{row.method}{psnr}", fontsize=7)
    kind = "images" if result.kind == "image" else "latents, first 3 channels each scaled to [0, 1]"
    fig.suptitle(f"{result.target}: {kind}", fontsize=8)
    save_figure(fig, path, dpi=110)
    return None


def write_all(result: EvalResult, out: Path, argv: list[str]) -> list[Path]:
    """evaluate.md, evaluate.json and grid.png (or a note in evaluate.md saying why there is no grid)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    note = plot_grid(result, out / "grid.png")
    if note is None:
        written.append(out / "grid.png")
    text = markdown(result) + ("" if note is None else f"\n- {note}")
    (out / "evaluate.md").write_text(text + "\n")
    write_json(result, out / "evaluate.json", argv)
    return [out / "evaluate.md", out / "evaluate.json", *written]
