"""The adaptive presets against the peers' adaptive caches (``c4d bench --thresholds ...``) as the README shows them:
selected rows, a column group per trained model — the FLOP-equivalent steps a row computed, its PSNR (mean / worst
image) and its gain over the uncached model at ceil(that compute). ``docs/signals-cpu.md`` shows every row."""

from __future__ import annotations

from .matrix import BenchResult
from .matrix_report import fidelity_table
from .report import run_line

# the rows the README selects: each adaptive preset and peer at the thresholds that tell them apart, the library's
# fixed-schedule default at two budgets beside them
SELECTED = (
    "customcache τ0.4", "customcache τ0.1", "teacache τ0.1", "teacache τ0.2", "fbcache τ0.1", "magcache τ0.1",
    "taylorseer @10", "taylorseer @16", "diffusers-fbcache τ0.1", "diffusers-magcache τ0.1",
    "cache-dit-dbcache τ0.1", "cache-dit-dbcache+taylorseer τ0.05", "cache-dit-dbcache+taylorseer τ0.1",
)


def selected_signals(result: BenchResult) -> str:
    return fidelity_table(result, SELECTED)


def signal_speed(result: BenchResult) -> str:
    """Speed only (random weights): per row, the FLOP-equivalent steps computed and the measured / ideal speedup,
    the uncached model run with fewer steps included (it pays no probe and no host decision)."""
    lines = ["| row | computed (of steps) | measured / ideal speedup | ratio |", "|---|---|---|---|"]
    for row in result.rows:
        if row.family == "uncached":
            continue
        lines.append(f"| `{row.method}` | {row.computations:.1f} of {row.steps} | "
                     f"**{row.measured_speedup:.2f}×** / {row.ideal_speedup:.2f}× | {row.ratio:.2f} |")
    if result.meta:
        lines += ["", f"Measured in one run, the rows alternated; {run_line(result.meta)}."]
    return "\n".join(lines) + "\n"
