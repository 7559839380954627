"""Caching a context-parallel transformer: N CPU ranks (gloo on 127.0.0.1), diffusers' Ulysses or ring attention.

Every rank builds the same Flux transformer (the CPU benchmark config: 4 double + 8 single blocks,
hidden 512, 256 image + 64 text tokens, random weights), enables diffusers' context parallelism
(``enable_parallelism``; on CPU through ``c4d_compile.zoo.context_parallel``, see its note) and
compiles it with c4d. A 28-step loop runs uncached and cached, alternated; rank 0 prints seconds per
generation, measured and ideal speedup, cache bytes per rank and compile time, then the same in one
process for comparison.

    python examples/context_parallel.py [--world 2] [--mode ulysses|ring] [--policy taylorseer] [--steps 28]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from c4d_compile import c4d_backend
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


def _rank(rank: int, world: int, port: int, args: argparse.Namespace) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = measure(world, args.mode, args.policy, args.steps, args.repeats, args.lowering)
        print(json.dumps({"rank": rank, **result}), flush=True)
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
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(args.world, port, args), nprocs=args.world)
    print(json.dumps({"rank": "single process", **measure(1, args.mode, args.policy, args.steps, args.repeats,
                                                                  args.lowering)}))


if __name__ == "__main__":
    main()
