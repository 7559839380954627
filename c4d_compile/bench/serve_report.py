"""The serving loop's results (``examples/serve.py``): throughput and latency of a stream of requests served in
batches, cached (each row of a batch at its own request's step) against the plain compiled model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .report import read_results_json, run_line, write_results_json


@dataclass(frozen=True)
class ServeRow:
    server: str  # "plain" (the model compiled without c4d) or the preset
    requests: int  # served to the end
    seconds: float  # wall time of the whole stream
    images_per_s: float
    latency_p50_s: float  # arrival to last step, per request
    latency_p95_s: float
    calls: int  # batched model calls
    ideal_speedup: float  # the counted FLOP ratio of what ran (1 for the plain model)


@dataclass
class ServeResults:
    meta: dict
    model: str
    lowering: str
    max_batch: int
    steps: tuple[int, int]  # each request's step count drawn from this range
    rows: list[ServeRow] = field(default_factory=list)


def write_serve_json(results: ServeResults, path: Path) -> None:
    write_results_json(results, path)


def read_serve_json(path: Path) -> ServeResults:
    results = read_results_json(path, ServeResults, ServeRow)
    results.steps = tuple(results.steps)
    return results


def serve_table(results: ServeResults) -> str:
    plain = next(r for r in results.rows if r.server == "plain")
    lines = ["| server | images / s | vs plain | ideal (FLOPs) | ratio | latency p50 / p95 s | batched calls |",
             "|---|---|---|---|---|---|---|"]
    for r in results.rows:
        speedup = r.images_per_s / plain.images_per_s
        lines.append(f"| `{r.server}` | {r.images_per_s:.2f} | **{speedup:.2f}×** | {r.ideal_speedup:.2f}× | "
                     f"{speedup / r.ideal_speedup:.2f} | {r.latency_p50_s:.2f} / {r.latency_p95_s:.2f} | {r.calls} |")
    lo, hi = results.steps
    lines += ["", f"{plain.requests} requests of {lo}–{hi} steps arriving over time, at most {results.max_batch} rows "
                  f"per batched call, `{results.model}` (random weights, {results.lowering} lowering, CPU); "
                  f"{run_line(results.meta)}."]
    return "\n".join(lines) + "\n"
