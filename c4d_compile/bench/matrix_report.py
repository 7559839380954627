"""The full matrix (``c4d bench``) as the README shows it: one row per method, one column per model (grid), each
cell the measured / ideal speedup, the mean PSNR and the gain over the uncached model with ceil(the row's
FLOP-equivalent steps). ``docs/bench-cpu.md`` shows every row (``report.markdown``). ``fidelity_table``: the
trained models' fidelity alone (compute, mean and worst PSNR, gain over fewer steps), for runs whose timings are
not the point (studies of one feature, taken while other work shared the cores)."""

from __future__ import annotations

from collections.abc import Sequence

from .matrix import BenchResult, BenchRow
from .report import models_of, num_text, run_line


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



def _fidelity_cells(row: BenchRow | None) -> str:
    if row is None:
        return "– | – | –"  # not run on that model (the run's bench.md says why)
    gain = "–" if row.fewer_steps_db is None else f"{row.fewer_steps_db:+.1f}"
    return (f"{num_text(row.computations, '.1f')} | {num_text(row.psnr_mean, '.1f')} / "
            f"{num_text(row.psnr_worst, '.1f')} | {gain}")


def fidelity_table(result: BenchResult, methods: Sequence[str] | None = None) -> str:
    """Per method (``methods``, else every cached row in run order) and trained model: the FLOP-equivalent steps
    computed, PSNR mean / worst image, dB over the uncached model at ceil(that compute)."""
    models = models_of(result, trained=True)
    cells = {(r.method, r.model): r for r in result.rows}
    if methods is None:
        methods = [r.method for r in result.rows if r.family not in ("uncached", "fewer steps")]
    shown = [m for m in dict.fromkeys(methods) if any((m, model) in cells for model in models)]
    head = " | ".join(f"{m.replace(' (trained)', '')}: computed | PSNR mean / worst | vs fewer steps" for m in models)
    lines = [f"| row | {head} |", "|---" * (3 * len(models) + 1) + "|"]
    for method in shown:
        lines.append(f"| `{method}` | " + " | ".join(_fidelity_cells(cells.get((method, m))) for m in models) + " |")
    if result.meta:
        lines += ["", f"Every row against the uncached model run with ceil(its FLOP-equivalent steps); "
                      f"{run_line(result.meta)}."]
    return "\n".join(lines) + "\n"
