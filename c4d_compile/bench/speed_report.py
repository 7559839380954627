"""A cached-vs-uncached speed table from a bench result with one cached method per model variant (e.g.
``examples/quantized_speed.py``: flux-bench quantized in several ways): per model, both times per generation,
the measured and ideal speedups and the fidelity, as ``c4d publish`` renders it into the docs."""

from __future__ import annotations

from .matrix import BenchResult


def speed_table(result: BenchResult) -> str:
    lines = ["| model | lowering | uncached s / gen | cached s / gen | method | measured speedup | ideal | PSNR vs "
             "uncached | vs fewer steps (ceil) |", "|---|---|---|---|---|---|---|---|---|"]
    for row in result.rows:
        if row.family in ("uncached", "fewer steps"):
            continue
        gain = "–" if row.fewer_steps_db is None else f"{row.fewer_steps_db:+.1f} dB"
        lines.append(f"| {row.model} | {row.lowering} | {row.uncached_seconds:.3f} | {row.seconds:.3f} | "
                     f"`{row.method}` ({row.computations:g} of {row.steps} steps) | **{row.measured_speedup:.2f}x** | "
                     f"{row.ideal_speedup:.2f}x | {row.psnr_mean:.1f} dB | {gain} |")
    return "\n".join(lines)
