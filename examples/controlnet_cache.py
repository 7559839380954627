"""Caching a Flux ControlNet pipeline: the transformer alone, or the transformer and its ControlNet on one schedule.

``enable_cache(pipe, ...)`` compiles the pipeline's ``controlnet`` with the transformer's backend, so on a cached
step the ControlNet's blocks are forecast too; ``denoisers=("transformer",)`` leaves it uncompiled (it then runs in
full every step). Per preset, both ways, on the tiny Flux ControlNet pipeline of the tests (``tests/support/
controlnet.py``: 2 double + 2 single blocks in each model, random seeded weights, 64 x 64 px, eager lowering)::

    python examples/controlnet_cache.py --out docs/results/controlnet-cpu/controlnet.json

FLOPs (counted, ``c4d_compile.compiler.flops``): a full step, a cached step and a whole generation of both models
together; the uncompiled ControlNet's forward is counted on the same call. Fidelity: PSNR of the final latents
against the uncached pipeline, over ``--seeds`` seeds (the control image is the same). The weights are random, so the
fidelity figures are only indicative: they compare the two ways, not what a trained ControlNet would show.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from importlib.metadata import version
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the pipelines the tests run

from support.controlnet import build, run  # noqa: E402

from c4d_compile import enable_cache  # noqa: E402
from c4d_compile.bench.report import run_meta  # noqa: E402
from c4d_compile.bench.speed import psnr  # noqa: E402
from c4d_compile.compiler.flops import flop_counter  # noqa: E402
from c4d_compile.runtime.executor import VariantKind  # noqa: E402

NAME = "flux-controlnet"
MODES = {"transformer": ("transformer",), "transformer + controlnet": ("transformer", "controlnet")}


def controlnet_flops() -> int:
    """FLOPs of one uncompiled ControlNet call, at the pipeline's sizes."""
    pipe = build(NAME)
    calls: list[int] = []
    original = pipe.controlnet.forward

    def counted(*args, **kwargs):
        counter = flop_counter()
        with counter:
            out = original(*args, **kwargs)
        calls.append(counter.get_total_flops())
        return out

    pipe.controlnet.forward = counted
    run(pipe, NAME, steps=1, seed=0)
    return calls[0]


def measure(policy: str, mode: str, steps: int, seeds: list[int], references: dict, controlnet_full: int) -> dict:
    torch._dynamo.reset()
    pipe = build(NAME)
    backend = enable_cache(pipe, policy, lowering="eager", denoisers=MODES[mode])
    psnrs = [psnr(run(pipe, NAME, steps=steps, seed=seed), references[seed]) for seed in seeds]
    stats = backend.stats().last
    models = {}
    for runtime in backend.runtimes:  # the ControlNet runs first in each step
        name = "controlnet" if "controlnet" in MODES[mode] and not models else "transformer"
        flops = runtime.flops
        models[name] = {"full": flops[VariantKind.FULL].value, "cached": flops[VariantKind.CACHED].value}
    if "controlnet" not in models:  # uncompiled: in full on every step
        models["controlnet"] = {"full": controlnet_full, "cached": controlnet_full}
    contexts = {name: ctx.computed for name, ctx in stats.contexts.items()}
    per_step = {kind: sum(m[kind] for m in models.values()) for kind in ("full", "cached")}
    full_steps = {name: len(computed) for name, computed in contexts.items()}
    generation = 0
    for model, flops in models.items():
        context = next((c for c in contexts if ("[controlnet]" in c) == (model == "controlnet")), None)
        full = full_steps[context] if context is not None else steps  # an uncompiled model computes every step
        generation += full * flops["full"] + (steps - full) * flops["cached"]
    uncached = steps * per_step["full"]
    return {
        "policy": policy, "cached": mode, "steps": steps, "computed": contexts,
        "flops_per_model": models,
        "flops_full_step": per_step["full"], "flops_cached_step": per_step["cached"],
        "flops_generation": generation, "ideal_speedup": round(uncached / generation, 3),
        "psnr_db": [round(p, 2) for p in psnrs],
        "psnr_db_mean": round(sum(psnrs) / len(psnrs), 2) if all(math.isfinite(p) for p in psnrs) else None,
    }


def table(rows: list[dict]) -> str:
    lines = ["| preset | cached | full steps | FLOPs / full step | FLOPs / cached step | FLOPs / generation | "
             "ideal speedup | PSNR vs uncached (mean) |", "|---|---|---|---|---|---|---|---|"]
    def n(value: int) -> str:
        return f"{value:,}".replace(",", " ")

    for r in rows:
        full = "; ".join(f"{c}: {v}" for c, v in r["computed"].items())
        lines.append(f"| `{r['policy']}` | {r['cached']} | {full} | {n(r['flops_full_step'])} | "
                     f"{n(r['flops_cached_step'])} | {n(r['flops_generation'])} | {r['ideal_speedup']:.2f}x | "
                     f"{r['psnr_db_mean']} dB |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=["taylorseer", "fora", "stack-reuse", "taylorseer-lite"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/controlnet-cpu/controlnet.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = run_meta(argv, program="python examples/controlnet_cache.py")
    meta["versions"]["diffusers"] = version("diffusers")
    meta["pipeline"] = ("FluxControlNetPipeline: tiny FluxTransformer2DModel and FluxControlNetModel (2 double + 2 "
                        "single blocks, dim 32, 16 image + 8 text tokens), tiny AutoencoderKL, random seeded weights "
                        "(tests/support/controlnet.py), conditioning scale 0.7, eager lowering")
    meta["notes"] = ["random weights: the PSNR figures compare caching the transformer alone with caching both "
                     "models; they are only indicative of a trained model's fidelity"]
    seeds = list(range(args.seeds))
    references = {seed: run(build(NAME), NAME, steps=args.steps, seed=seed) for seed in seeds}
    controlnet_full = controlnet_flops()
    rows = []
    for policy in args.policies:
        for mode in MODES:
            row = measure(policy, mode, args.steps, seeds, references, controlnet_full)
            rows.append(row)
            print(f"{policy} ({mode} cached): {row['flops_cached_step']:,} FLOPs per cached step, "
                  f"{row['ideal_speedup']:.2f}x ideal, PSNR {row['psnr_db_mean']} dB", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(table(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
