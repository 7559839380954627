"""A reference serving loop: requests arrive over time, a step-level scheduler batches the next step of every
active request (up to ``--max-batch`` rows) into one call, requests join and leave between steps::

    python examples/serve.py --out docs/results/serve-cpu/serve.json
    c4d publish                                    # renders the README's table from that file

The same stream of requests (step counts, arrival times, seeds drawn from ``--seed``) is served twice, by the plain
compiled model and by the cached one, where each row of a batch is its request (``backend.rows``): its own step,
state and decision, the rows due a full step computed together and the forecast rows together. Reported: images per
second over the whole stream, latency from arrival to the last step (p50 / p95), batched calls, and the counted
FLOP ratio of what ran.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from c4d_compile import c4d_backend
from c4d_compile.bench.report import run_meta
from c4d_compile.bench.serve_report import ServeResults, ServeRow, serve_table, write_serve_json
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


@dataclass
class Request:
    rid: int
    arrival: int  # the loop iteration it arrives at
    steps: int
    seed: int
    done: int = 0
    latent: torch.Tensor | None = None
    started: float = 0.0
    finished: float = 0.0
    inputs: dict = field(default_factory=dict)


def draw_requests(count: int, steps: tuple[int, int], every: int, seed: int) -> list[Request]:
    draw = random.Random(seed)
    return [Request(i, i * every + draw.randint(0, every), draw.randint(*steps), draw.randrange(10**6))
            for i in range(count)]


def batched_keys(spec) -> set[str]:
    """The inputs that carry the batch: those whose first size follows it."""
    one, two = spec.make_inputs(batch=1), spec.make_inputs(batch=2)
    return {k for k, v in one.items() if isinstance(v, torch.Tensor) and v.dim() and two[k].shape[0] == 2 * v.shape[0]}


def serve(compiled, spec, requests: list[Request], max_batch: int, backend=None) -> tuple[float, int]:
    """Serve the stream; with ``backend``, every batch tells it which request each row is. Returns (seconds, calls)."""
    keys = batched_keys(spec)
    for r in requests:
        r.inputs = spec.make_inputs(batch=1, seed=r.seed % 1000)
        r.latent, r.done = r.inputs[spec.latent_key].clone(), 0
    waiting, active, iteration, calls = list(requests), [], 0, 0
    start = time.perf_counter()
    with torch.no_grad():
        while waiting or active:
            now = time.perf_counter() - start
            while waiting and waiting[0].arrival <= iteration and len(active) < max_batch:
                r = waiting.pop(0)
                r.started = now
                active.append(r)
                if backend is not None:
                    backend.begin_request(r.rid, num_steps=r.steps)
            iteration += 1
            if not active:
                continue
            grids = [spec.timesteps(r.steps) for r in active]
            times = [g[r.done] for g, r in zip(grids, active)]
            parts = [{**r.inputs, spec.latent_key: r.latent, spec.timestep_key: t} for r, t in zip(active, times)]
            batch = {k: torch.cat([p[k] for p in parts]) if k in keys else parts[0][k] for k in parts[0]}
            if backend is not None:
                with backend.rows([r.rid for r in active]):
                    out = compiled(**batch)
            else:
                out = compiled(**batch)
            calls += 1
            out = out[0] if isinstance(out, (tuple, list)) else out
            for i, (r, g) in enumerate(zip(active, grids)):
                following = g[r.done + 1] if r.done + 1 < r.steps else torch.zeros_like(g[r.done])
                r.latent = r.latent + (following - g[r.done]).float().reshape(-1)[0] * out[i: i + 1]
                r.done += 1
            for r in [r for r in active if r.done == r.steps]:
                active.remove(r)
                r.finished = time.perf_counter() - start
                if backend is not None:
                    backend.end_request(r.rid)
    return time.perf_counter() - start, calls


def row(server: str, requests: list[Request], seconds: float, calls: int, ideal: float) -> ServeRow:
    latencies = sorted(r.finished - r.started for r in requests)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    return ServeRow(server, len(requests), round(seconds, 3), round(len(requests) / seconds, 3),
                    round(statistics.median(latencies), 3), round(p95, 3), calls, round(ideal, 3))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="flux")
    parser.add_argument("--policy", default="taylorseer")
    parser.add_argument("--lowering", default="eager", choices=("eager", "inductor"))
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--steps", type=int, nargs=2, default=(20, 50), metavar=("MIN", "MAX"))
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--arrive-every", type=int, default=4, help="loop iterations between arrivals, about")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/results/serve-cpu/serve.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = run_meta(argv, program="python examples/serve.py")
    spec = get_tiny_model(args.model)
    results = ServeResults(meta, args.model, args.lowering, args.max_batch, tuple(args.steps))
    plain = torch.compile(spec.build().eval(), backend=args.lowering, dynamic=True)
    backend = c4d_backend(args.policy, lowering=args.lowering)
    cached = torch.compile(spec.build().eval(), backend=backend, dynamic=True)
    warm = draw_requests(3, (3, 4), 1, args.seed + 1)  # compile both at batch one and at a dynamic batch
    serve(plain, spec, warm, args.max_batch)
    serve(cached, spec, warm, args.max_batch, backend)
    backend.reset(stats=True)
    for server, compiled, own in (("plain", plain, None), (args.policy, cached, backend)):
        requests = draw_requests(args.requests, tuple(args.steps), args.arrive_every, args.seed)
        seconds, calls = serve(compiled, spec, requests, args.max_batch, own)
        ideal = backend.stats().ideal_speedup if own is not None else 1.0
        results.rows.append(row(server, requests, seconds, calls, ideal))
        print(f"{server}: {results.rows[-1]}", file=sys.stderr)
    write_serve_json(results, args.out)
    print(serve_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
