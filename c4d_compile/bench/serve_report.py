"""The serving loop's results: throughput and latency of a stream of requests served in batches, cached (each row
of a batch at its own request's step) against the plain compiled model (``examples/serve.py``), and the bounded
load test over HTTP (``examples/serve_load.py``)."""

from __future__ import annotations

import json
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


@dataclass
class LoadResults:
    meta: dict
    policy: str
    answered: int  # requests sent and answered before the time cap
    completed: int  # well-formed requests served to their last step, each then run alone
    mismatched: int  # of those, how many differ from their solo run beyond 1e-5 (relative to its scale)
    max_abs_difference: float
    cancelled: int  # requests cancelled mid-way
    malformed: int
    statuses: dict  # per kind of request (ok / cancel / malformed): the HTTP statuses it got
    seconds: float
    calls: int  # batched calls of the load
    rows: int  # rows they computed
    live_state_bytes: int  # cache state held when the load was over
    pending: int  # requests still waiting or running then
    rss_before_mib: float  # resident memory after warm-up
    rss_rounds_mib: list  # and after each round of the load


def write_load_json(results: LoadResults, path: Path) -> None:
    write_results_json(results, path)


def read_load_json(path: Path) -> LoadResults:
    return LoadResults(**json.loads(Path(path).read_text()))


def load_table(r: LoadResults) -> str:
    statuses = "; ".join(f"{kind}: {', '.join(map(str, codes)) or '–'}" for kind, codes in r.statuses.items())
    lines = ["| requests answered | completed = solo run | cancelled | malformed | HTTP statuses | rows / batched call "
             "| live state after | RSS after warm-up → each round |",
             "|---|---|---|---|---|---|---|---|",
             f"| {r.answered} in {r.seconds:.0f} s | {r.completed - r.mismatched} of {r.completed} (max abs diff "
             f"{r.max_abs_difference:.1e}) | {r.cancelled} | {r.malformed} | {statuses} | {r.rows / r.calls:.1f} | "
             f"{r.live_state_bytes} B, {r.pending} pending | "
             f"{' → '.join(f'{m:.0f}' for m in (r.rss_before_mib, *r.rss_rounds_mib))} MiB |",
             "", f"`{r.policy}` on the tiny Flux (random weights, eager, CPU) over HTTP on loopback; "
                 f"{run_line(r.meta)}."]
    return "\n".join(lines) + "\n"
