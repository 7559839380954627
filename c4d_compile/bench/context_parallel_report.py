"""The context-parallel table (``examples/context_parallel.py --out``): per run, the ranks and one process measured
in the same run — seconds per generation uncached and cached, measured and ideal speedup, cache per rank and the
first generation's time (compile included)."""

from __future__ import annotations

import json
from pathlib import Path

from .report import run_line


def read_runs(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text())


def keep_run(path: Path, run: dict) -> None:
    """Add ``run`` to the runs kept in ``path``; an earlier run of the same world, mode and policy is replaced."""
    key = (run["ranks"]["world"], run["mode"], run["policy"])
    runs = read_runs(path) if Path(path).exists() else []
    runs = [r for r in runs if (r["ranks"]["world"], r["mode"], r["policy"]) != key] + [run]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(runs, indent=1) + "\n")


def _row(policy: str, what: str, result: dict) -> str:
    seconds, first = result["seconds"], result["first_generation_s"]
    return (f"| `{policy}` | {what} | {seconds['uncached']:.2f} | {seconds['cached']:.2f} | "
            f"{result['measured']:.2f}× | {result['ideal']:.2f}× | {result['cache_mib']:.1f} MiB | "
            f"{first['cached']:.1f} s |")


def context_parallel_table(runs: list[dict]) -> str:
    lines = ["| policy | run | uncached s / gen | cached s / gen | measured | ideal | cache per rank | first "
             "generation (compile) |", "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        world = run["ranks"]["world"]
        lines.append(_row(run["policy"], f"{world} ranks, {run['mode']}", run["ranks"]))
        lines.append(_row(run["policy"], "1 process (same run)", run["single"]))
    first = runs[0]
    lines += ["", f"Flux CPU benchmark config, {first['steps']} steps, {first['lowering']} lowering, medians of "
                  f"{first['repeats']} alternated runs; each run: {'; '.join(run_line(r['meta']) for r in runs)}."]
    return "\n".join(lines) + "\n"
