"""The per-call timings table (``examples/per_call_timings.py``): what one call of the compiled transformer costs,
by the variant it ran (a full step, a cached step) and for the plain compiled model, per lowering."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .report import read_results_json, run_line, write_results_json


@dataclass(frozen=True)
class CallTimes:
    lowering: str  # "inductor" or "eager"; the plain model is compiled by the same lowering
    kind: str  # "full" or "cached": the variant a cached model's call ran; "plain": the model compiled without c4d;
    # "overhead-full" / "overhead-cached": the Runtime's own time in such a call
    calls: int  # timed calls of that kind, over every timed generation
    median_us: float
    p10_us: float
    p90_us: float


@dataclass
class PerCallResults:
    meta: dict
    model: str
    policy: str
    steps: int
    generations: int
    rows: list[CallTimes] = field(default_factory=list)


def write_per_call_json(results: PerCallResults, path: Path) -> None:
    write_results_json(results, path)


def read_per_call_json(path: Path) -> PerCallResults:
    return read_results_json(path, PerCallResults, CallTimes)


KINDS = {"full": "full step", "cached": "cached step", "plain": "plain compiled model (no c4d)",
         "overhead-full": "host overhead of a full step", "overhead-cached": "host overhead of a cached step"}


def per_call_table(results: PerCallResults) -> str:
    lines = ["| lowering | call | median µs | 10th–90th percentile µs | calls timed |", "|---|---|---|---|---|"]
    for row in results.rows:
        lines.append(f"| {row.lowering} | {KINDS.get(row.kind, row.kind)} | **{row.median_us:.0f}** | "
                     f"{row.p10_us:.0f}–{row.p90_us:.0f} | {row.calls} |")
    lines += ["", f"`{results.policy}` on the tiny `{results.model}`, {results.steps} steps, medians over "
                  f"{results.generations} generations alternated with the plain model; the host overhead is the "
                  f"Runtime's time minus its compiled variants' own, in generations of its own; "
                  f"{run_line(results.meta)}."]
    return "\n".join(lines) + "\n"
