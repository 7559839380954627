"""The full matrix (``c4d bench``) as the README shows it: one row per method, one column per model (grid), each
cell the measured / ideal speedup, the mean PSNR and the gain over the uncached model with ceil(the row's
FLOP-equivalent steps). ``docs/bench-cpu.md`` shows every row (``report.markdown``)."""

from __future__ import annotations

from .matrix import BenchResult, BenchRow
from .report import models_of, num_text


def _cell(row: BenchRow | None) -> str:
    if row is None:
        return "–"  # the method was skipped on that model (the run's bench.md says why)
    gain = "" if row.fewer_steps_db is None else f" ({row.fewer_steps_db:+.1f})"
    return (f"{row.measured_speedup:.2f}× / {row.ideal_speedup:.2f}× · {num_text(row.psnr_mean, '.1f')}{gain}"
            f"{' ★' if row.on_front else ''}")


def _matrix(result: BenchResult, trained: bool) -> str:
    models = models_of(result, trained)
    methods = [m for m in dict.fromkeys(r.method for r in result.rows if r.family not in ("uncached", "fewer steps"))
               if any(r.method == m and r.model in models for r in result.rows)]
    cells = {(r.method, r.model): r for r in result.rows}
    lines = ["| method | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(_cell(cells.get((method, m))) for m in models) + " |")
    return "\n".join(lines) + "\n"


def trained_matrix(result: BenchResult) -> str:
    """The trained reference models: fidelity (their measured speedups are overhead-bound)."""
    return _matrix(result, trained=True)


def random_matrix(result: BenchResult) -> str:
    """The random-weight models: speed (their PSNR says almost nothing about fidelity)."""
    return _matrix(result, trained=False)

