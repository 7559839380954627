"""A bounded load test of the step server over HTTP on loopback: a fixed number of requests (or until a time cap)
from concurrent clients, with random step counts, prompt lengths and arrival times, some cancelled mid-way and a
few malformed; then every completed request is run again alone and compared::

    python examples/serve_load.py --out docs/results/serve-cpu/load.json
    c4d publish                                    # renders the README's table from that file

Checked and reported: completed requests equal to their solo runs (max abs difference), malformed requests answered
with their typed error (400, or 500 for one that fails in its own batch) while the others complete, cancelled
ones answered 409, live cache state after the run (must be 0 bytes), and the process's resident memory after
warm-up and after each round of ``--requests`` (growth that stops is warm-up; growth that goes on, a leak).
The tiny Flux of ``c4d_compile.zoo`` (random weights), whose prompt length varies through
``encoder_hidden_states`` and ``txt_ids``.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from c4d_compile.bench.report import run_meta
from c4d_compile.bench.serve_report import LoadResults, load_table, write_load_json
from c4d_compile.serving.http import post, serve_http
from c4d_compile.serving.tiny import tiny_server
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

SPEC = get_tiny_model("flux")
MALFORMED = ("missing input", "two rows", "nan timestep", "not json", "ids not matching its tokens")


def rss_mib() -> float:
    """Resident memory of this process (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def request_inputs(seed: int, text_len: int) -> dict:
    inputs = SPEC.make_inputs(batch=1, seed=seed)
    del inputs[SPEC.timestep_key]
    inputs["encoder_hidden_states"] = torch.randn(1, text_len, 32, generator=torch.Generator().manual_seed(seed))
    inputs["txt_ids"] = torch.zeros(text_len, 3)
    return inputs


def body(rid: str, inputs: dict, steps: int) -> dict:
    return {"id": rid, "timesteps": [float(t) for t in SPEC.timesteps(steps)],
            "inputs": {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}}


def malformed(kind: str, rid: str) -> dict | bytes:
    good = body(rid, request_inputs(7, 8), 3)
    if kind == "missing input":
        del good["inputs"]["img_ids"]
    elif kind == "two rows":
        good["inputs"]["hidden_states"] *= 2
    elif kind == "nan timestep":
        good["timesteps"][1] = float("nan")
    elif kind == "not json":
        return b'{"id": "' + rid.encode() + b'", "inputs": '
    else:  # well formed, but its image ids do not match its tokens: its batch fails, no other
        good["inputs"]["img_ids"] = [[0.0, 0.0, 0.0]] * 9
    return good


@dataclass(frozen=True)
class Planned:
    rid: str
    seed: int
    kind: str  # ok, cancel or malformed
    steps: int
    text_len: int
    gap: float  # seconds before the next one is sent


def client(port: int, item: Planned, outcomes: dict) -> None:
    """One request over its own connection, as its kind says: sent whole, cancelled mid-way, or malformed."""
    if item.kind == "malformed":
        outcomes[item.rid] = post(port, "/generate", malformed(MALFORMED[item.seed % len(MALFORMED)], item.rid))
    elif item.kind == "cancel":  # long enough to be cancelled while it runs
        with ThreadPoolExecutor(1) as one:
            pending = one.submit(post, port, "/generate", body(item.rid, request_inputs(item.seed, item.text_len), 200))
            time.sleep(0.05)
            post(port, "/cancel", {"id": item.rid})
            outcomes[item.rid] = pending.result()
    else:
        outcomes[item.rid] = post(port, "/generate", body(item.rid, request_inputs(item.seed, item.text_len),
                                                          item.steps))


def run_round(port: int, items: list[Planned], outcomes: dict, clients: int, deadline: float) -> None:
    """Send ``items`` at their arrival times from ``clients`` concurrent connections; none after ``deadline``."""
    with ThreadPoolExecutor(clients) as pool:
        for item in items:
            if time.perf_counter() > deadline:
                break
            pool.submit(client, port, item, outcomes)
            time.sleep(item.gap)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="teacache")
    parser.add_argument("--requests", type=int, default=500, help="per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="no request is sent after this")
    parser.add_argument("--steps", type=int, nargs=2, default=(3, 10), metavar=("MIN", "MAX"))
    parser.add_argument("--clients", type=int, default=24, help="concurrent connections")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--cancel", type=float, default=0.05, help="share of requests cancelled mid-way")
    parser.add_argument("--malformed", type=float, default=0.02, help="share of malformed requests")
    parser.add_argument("--arrive-ms", type=float, default=5.0, help="mean time between arrivals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/results/serve-cpu/load.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = run_meta(argv, program="python examples/serve_load.py")
    server = tiny_server("flux", args.policy, max_batch=args.max_batch, **({"threshold": 0.6}
                                                                            if args.policy == "teacache" else {}))
    server.start()
    httpd = serve_http(server)
    port = httpd.server_address[1]
    for rid in range(3):  # warm-up: the batch-one and the dynamic-batch graphs
        post(port, "/generate", body(f"warm-{rid}", request_inputs(rid, 8), 3))
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda i: post(port, "/generate", body(f"warm-b{i}", request_inputs(i, 8), 3)), range(3)))
    rss_before = rss_mib()
    draw = random.Random(args.seed)
    plan, outcomes, rss_rounds = [], {}, []
    start = time.perf_counter()
    for round_ in range(args.rounds):  # RSS after each: growth that stops is warm-up, growth that goes on a leak
        items = []
        for i in range(args.requests):
            roll = draw.random()
            kind = "malformed" if roll < args.malformed else "cancel" if roll < args.malformed + args.cancel else "ok"
            items.append(Planned(f"r{round_}-{i}", i, kind, draw.randint(*args.steps), draw.choice((8, 11, 13)),
                                 draw.expovariate(1.0) * args.arrive_ms / 1000))
        run_round(port, items, outcomes, args.clients, start + args.max_seconds)
        plan += items
        gc.collect()
        rss_rounds.append(round(rss_mib(), 1))
    seconds = time.perf_counter() - start
    httpd.shutdown()
    live_bytes, pending, calls, rows = server.state_bytes, server.pending, server.calls, server.rows
    worst, completed, mismatched = 0.0, 0, 0
    for item in plan:  # each completed request alone, through the same server
        status, reply = outcomes.get(item.rid, (None, None))
        if item.kind != "ok" or status != 200:
            continue
        solo = server.submit(request_inputs(item.seed, item.text_len), [float(t) for t in SPEC.timesteps(item.steps)])
        alone = solo.result()
        difference = float((torch.tensor(reply["output"]) - alone).abs().max())
        worst, completed = max(worst, difference), completed + 1
        mismatched += difference > 1e-5 * max(1.0, float(alone.abs().max()))
    server.stop()
    answered = [item for item in plan if item.rid in outcomes]
    statuses = {kind: sorted({outcomes[i.rid][0] for i in answered if i.kind == kind})
                for kind in ("ok", "cancel", "malformed")}
    results = LoadResults(meta, args.policy, len(answered), completed, mismatched, worst,
                          sum(i.kind == "cancel" for i in answered), sum(i.kind == "malformed" for i in answered),
                          statuses, round(seconds, 1), calls, rows, live_bytes, pending, round(rss_before, 1),
                          rss_rounds)
    write_load_json(results, args.out)
    print(load_table(results))
    ok = mismatched == 0 and live_bytes == 0 and pending == 0 and statuses["ok"] == [200]
    return 0 if ok else 1

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
