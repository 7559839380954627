"""Caching a context-parallel transformer: N CPU ranks (gloo on 127.0.0.1), diffusers' Ulysses or ring attention.

Every rank builds the same Flux transformer (the CPU benchmark config: 4 double + 8 single blocks,
hidden 512, 256 image + 64 text tokens, random weights), enables diffusers' context parallelism
(``enable_parallelism``; on CPU through ``c4d_compile.zoo.context_parallel``, see its note) and
compiles it with c4d. A 28-step loop runs uncached and cached, alternated; rank 0 prints seconds per
generation, measured and ideal speedup, cache bytes per rank and compile time, then the same in one
process for comparison.

    python examples/context_parallel.py [--world 2] [--mode ulysses|ring] [--policy taylorseer] [--steps 28]

With ``--out FILE`` the run is also kept in FILE (a JSON list of runs, with the command, commit, machine and date;
a run of the same world, mode and policy replaces the earlier one), from which ``c4d publish`` renders the README's
table. The README's runs::

    for run in "--policy taylorseer" "--policy taylorseer-lite" "--world 4" "--mode ring" "--mode ring --world 4"; do
        python examples/context_parallel.py $run --out docs/results/context-parallel-cpu/runs.json
    done
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from c4d_compile import c4d_backend
from c4d_compile.bench.context_parallel_report import keep_run
from c4d_compile.bench.report import run_meta
from c4d_compile.zoo.context_parallel import MODES, enable_cpu_context_parallel
from c4d_compile.zoo.tiny_diffusers import first_output, get_tiny_model


def generation(call, spec, steps: int) -> float:
    """Seconds of one Euler loop over ``steps`` steps."""
    inputs = spec.make_inputs()
    x = inputs[spec.latent_key].clone()
    start = time.perf_counter()
    with torch.no_grad():
        for t in spec.timesteps(steps):
            out = first_output(call(**{**inputs, spec.latent_key: x, spec.timestep_key: t}))
            x = x - out / steps
    return time.perf_counter() - start


def measure(world: int, mode: str, policy: str, steps: int, repeats: int, lowering: str) -> dict:
    spec = get_tiny_model("flux-bench")
    model = spec.build()
    if world > 1:
        enable_cpu_context_parallel(model, world, mode)
    torch._dynamo.reset()
    backend = c4d_backend(policy, lowering=lowering, num_steps=steps)
    uncached = torch.compile(model, backend="eager" if lowering == "eager" else "inductor")
    cached = torch.compile(model, backend=backend)
    compile_seconds = {name: generation(call, spec, steps) for name, call in (("uncached", uncached),
                                                                             ("cached", cached))}
    times = {"uncached": [], "cached": []}
    for _ in range(repeats):  # alternated: the machine's drift hits both alike
        for name, call in (("uncached", uncached), ("cached", cached)):
            backend.reset(stats=True)
            times[name].append(generation(call, spec, steps))
    stats = backend.stats()
    seconds = {name: statistics.median(values) for name, values in times.items()}
    return {"world": world, "seconds": seconds, "measured": seconds["uncached"] / seconds["cached"],
            "ideal": stats.ideal_speedup, "full_steps": stats.full_steps, "cache_mib": stats.cache_bytes / 2**20,
            "first_generation_s": compile_seconds}


def _rank(rank: int, world: int, port: int, args: argparse.Namespace, found: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = measure(world, args.mode, args.policy, args.steps, args.repeats, args.lowering)
        print(json.dumps({"rank": rank, **result}), flush=True)
        if rank == 0:
            Path(found).write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=2, help="ranks (the token counts must divide by it)")
    parser.add_argument("--mode", choices=MODES, default="ulysses", help="how attention exchanges the tokens")
    parser.add_argument("--policy", default="taylorseer")
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lowering", choices=["eager", "inductor"], default="eager")
    parser.add_argument("--out", type=Path, help="keep the run in this JSON file (the README's table)")
    args = parser.parse_args()
    meta = run_meta(sys.argv[1:], program="python examples/context_parallel.py")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        found = Path(folder) / "rank0.json"
        mp.spawn(_rank, args=(args.world, port, args, str(found)), nprocs=args.world)
        ranks = json.loads(found.read_text())
    single = measure(1, args.mode, args.policy, args.steps, args.repeats, args.lowering)
    print(json.dumps({"rank": "single process", **single}))
    if args.out is not None:
        keep_run(args.out, {"meta": meta, "mode": args.mode, "policy": args.policy, "steps": args.steps,
                            "repeats": args.repeats, "lowering": args.lowering, "ranks": ranks, "single": single})


if __name__ == "__main__":
    main()
