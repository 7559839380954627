"""A reference serving loop: requests arrive over time, the step server (``c4d_compile.serving.StepServer``)
batches the next step of every active request (up to ``--max-batch`` rows) into one call, requests join and leave
between steps::

    python examples/serve.py --out docs/results/serve-cpu/serve.json
    c4d publish                                    # renders the README's table from that file

The same stream of requests (step counts, arrival iterations, seeds drawn from ``--seed``) is served twice, by the
plain compiled model and by the cached one, where each row of a batch is its request (``backend.rows``): its own
step, state and decision, the rows due a full step computed together and the forecast rows together. The loop is
driven here one iteration at a time (``server.step()``), so both servers see the same arrivals and batches.
Reported: images per second over the whole stream, latency from arrival to the last step (p50 / p95), batched
calls, and the counted FLOP ratio of what ran.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from c4d_compile.bench.report import run_meta
from c4d_compile.bench.serve_report import ServeResults, ServeRow, serve_table, write_serve_json
from c4d_compile.serving import StepServer
from c4d_compile.serving.tiny import tiny_server
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


@dataclass
class Request:
    rid: int
    arrival: int  # the loop iteration it arrives at
    steps: int
    seed: int


def draw_requests(count: int, steps: tuple[int, int], every: int, seed: int) -> list[Request]:
    draw = random.Random(seed)
    return [Request(i, i * every + draw.randint(0, every), draw.randint(*steps), draw.randrange(10**6))
            for i in range(count)]


def serve(server: StepServer, spec, requests: list[Request]) -> tuple[float, list[float], int]:
    """Serve the stream, each request submitted at its arrival iteration. Returns (seconds, latencies, calls)."""
    inputs = {}
    for r in requests:
        inputs[r.rid] = spec.make_inputs(batch=1, seed=r.seed % 1000)
        del inputs[r.rid][spec.timestep_key]
    arrived, finished = {}, {}
    waiting, futures, iteration = sorted(requests, key=lambda r: r.arrival), [], 0
    calls = server.calls
    start = time.perf_counter()
    while waiting or server.pending:
        while waiting and waiting[0].arrival <= iteration:
            r = waiting.pop(0)
            arrived[r.rid] = time.perf_counter()
            future = server.submit(inputs[r.rid], [float(t) for t in spec.timesteps(r.steps)], rid=r.rid)
            future.add_done_callback(lambda _, rid=r.rid: finished.__setitem__(rid, time.perf_counter()))
            futures.append(future)
        server.step()
        iteration += 1
    seconds = time.perf_counter() - start
    for future in futures:
        future.result()  # a request that failed fails the run
    return seconds, sorted(finished[rid] - arrived[rid] for rid in arrived), server.calls - calls


def row(name: str, count: int, seconds: float, latencies: list[float], calls: int, ideal: float) -> ServeRow:
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    return ServeRow(name, count, round(seconds, 3), round(count / seconds, 3), round(statistics.median(latencies), 3),
                    round(p95, 3), calls, round(ideal, 3))


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
    servers = {"plain": tiny_server(args.model, None, lowering=args.lowering, max_batch=args.max_batch),
               args.policy: tiny_server(args.model, args.policy, lowering=args.lowering, max_batch=args.max_batch)}
    for server in servers.values():  # compile at batch one and at a dynamic batch size
        serve(server, spec, draw_requests(3, (3, 4), 1, args.seed + 1))
    cached = servers[args.policy].backend
    cached.reset(stats=True)
    for name, server in servers.items():
        requests = draw_requests(args.requests, tuple(args.steps), args.arrive_every, args.seed)
        seconds, latencies, calls = serve(server, spec, requests)
        ideal = cached.stats().ideal_speedup if server.backend is not None else 1.0
        results.rows.append(row(name, len(requests), seconds, latencies, calls, ideal))
        print(f"{name}: {results.rows[-1]}", file=sys.stderr)
    write_serve_json(results, args.out)
    print(serve_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
