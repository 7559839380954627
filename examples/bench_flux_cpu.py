"""Speed and fidelity of a caching preset on the CPU Flux benchmark config.

FluxTransformer2DModel with 4 double + 8 single blocks, hidden 512, 256 image + 64 text tokens, random
weights; a 28-step flow-matching Euler loop. Both sides are compiled with inductor and their runs
alternate in one process; the figures are medians. Reports: measured speedup over the uncached
compiled model, the schedule's ideal speedup (counted FLOPs), their ratio, PSNR of the final latent
against the uncached one, and the compile time of both.

    python examples/bench_flux_cpu.py [--policy taylorseer-lite] [--steps 28] [--repeats 5] [--quick]
    python examples/bench_flux_cpu.py --repeats 5 --out docs/results/flux-cpu/flux_cpu.json   # the README's figures
    c4d publish
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

from c4d_compile import c4d_backend
from c4d_compile.bench.report import run_meta
from c4d_compile.bench.speed import generate, psnr, timed
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


def measure_compile(side: str, policy: str, steps: int) -> float:
    """Compile time of one side, in a fresh process with an empty inductor cache (no shared kernels).

    Inductor itself is warmed up first on a trivial function, so neither side pays its import.
    """
    spec = get_tiny_model("flux-bench")
    model = spec.build()
    inputs = spec.make_inputs()
    torch.compile(lambda x: x * 2 + 1, backend="inductor")(torch.ones(4))
    compiled = torch.compile(model, backend=c4d_backend(policy, num_steps=steps) if side == "c4d" else "inductor")
    _, first = timed(lambda: generate(compiled, spec, inputs, steps))
    _, steady = timed(lambda: generate(compiled, spec, inputs, steps))
    return first - steady


def compile_seconds(side: str, policy: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        cmd = [sys.executable, __file__, "--measure-compile", side, "--policy", policy, "--steps", str(steps)]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default="taylorseer-lite")
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    parser.add_argument("--out", default="bench-out/flux_cpu.json")
    parser.add_argument("--measure-compile", choices=["plain", "c4d"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_compile:
        print(measure_compile(args.measure_compile, args.policy, args.steps))
        return
    repeats = 2 if args.quick else args.repeats
    meta = run_meta(sys.argv[1:], program="python examples/bench_flux_cpu.py")

    torch.manual_seed(0)
    spec = get_tiny_model("flux-bench")
    model = spec.build()
    inputs = spec.make_inputs()
    run = lambda m: generate(m, spec, inputs, args.steps)  # noqa: E731

    eager_ref, eager_s = timed(lambda: run(model))
    plain = torch.compile(model, backend="inductor")
    backend = c4d_backend(args.policy, num_steps=args.steps)
    cached = torch.compile(model, backend=backend)

    run(plain), run(cached)  # compile both here; compile times are measured apart, below
    times = {"plain": [], "cached": []}
    for _ in tqdm(range(repeats), desc="alternating uncached / cached generations"):
        reference, t = timed(lambda: run(plain))
        times["plain"].append(t)
        backend.reset(stats=True)
        result, t = timed(lambda: run(cached))
        times["cached"].append(t)

    plain_s, cached_s = statistics.median(times["plain"]), statistics.median(times["cached"])
    stats = backend.stats()
    measured, ideal = plain_s / cached_s, stats.ideal_speedup
    # Compile time = first generation (trace + compile + run) minus a steady one, each side in a fresh
    # process with an empty inductor cache: in one process the second side would reuse the first's kernels.
    compiles = {side: [] for side in ("plain", "c4d")}
    for _ in tqdm(range(1 if args.quick else 2), desc="compile times (fresh processes)"):
        for side in compiles:
            compiles[side].append(compile_seconds(side, args.policy, args.steps))
    plain_compile, cached_compile = (statistics.median(compiles[s]) for s in ("plain", "c4d"))
    figures = {
        "meta": meta,
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "policy": args.policy,
        "options": backend.policy.options(),
        "steps": args.steps,
        "full_steps": stats.full_steps,
        "eager_uncompiled_s": eager_s,
        "uncached_compiled_s": plain_s,
        "cached_compiled_s": cached_s,
        "measured_speedup": measured,
        "ideal_speedup": ideal,
        "measured_over_ideal": measured / ideal,
        "psnr_final_latent_db": psnr(result, reference),
        "compile_s_plain": plain_compile,
        "compile_s_c4d": cached_compile,
        "compile_ratio": cached_compile / plain_compile,
        "cache_bytes": stats.cache_bytes,
        "repeats": repeats,
    }
    print(f"\n| {args.policy} on flux-bench, {args.steps} steps, CPU ({figures['threads']} threads) | value |")
    print("|---|---|")
    for key in ("uncached_compiled_s", "cached_compiled_s", "measured_speedup", "ideal_speedup",
                "measured_over_ideal", "psnr_final_latent_db", "compile_s_plain", "compile_s_c4d", "compile_ratio"):
        print(f"| {key} | {figures[key]:.3f} |")
    print(f"| full steps | {stats.full_steps} of {args.steps} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
