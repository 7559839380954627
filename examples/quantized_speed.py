"""Cached vs uncached wall time of the torchao-quantized flux-bench model on the CPU, as ``c4d bench`` measures it.

``c4d bench``'s ``flux-bench`` workload (FluxTransformer2DModel, 4 double + 8 single blocks, dim 512, 256 image + 64
text tokens, random weights, 28-step flow-matching Euler), with its transformer quantized in place by torchao
before anything compiles it, then ``bench_model`` as ``c4d bench`` runs it: the uncached model and the preset, both
compiled by the same lowering, their timed generations alternated ``--repeats`` times, medians compared; the
uncached model at the preset's FLOP-equivalent steps; PSNR of the final latent against the uncached quantized
model's. The rows and how the run was made go to one JSON file (and its table to a .md beside it)::

    python examples/quantized_speed.py --threads 2 --out docs/results/quantized-cpu/speed.json

Configs (``--quant``): ``int8-dynamic`` (activations quantized per call, int8 x int8 matmuls) and ``float`` (the
model unquantized, for comparison) on inductor; ``int8-weight-only`` on eager lowering, because inductor turns its
dequantize + matmul into a generated CPU kernel far slower than eager (``SLOW_ON_INDUCTOR``). ``--lowering``
overrides the lowering of every config.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import version
from pathlib import Path
from unittest import mock

import torch

from c4d_compile.bench import matrix
from c4d_compile.bench.matrix import BenchResult
from c4d_compile.bench.methods import C4DPreset
from c4d_compile.bench.report import markdown, run_meta, write_json
from c4d_compile.bench.workloads import load_workload

MODEL = "flux-bench"


def _config(name: str):
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    return {"int8-dynamic": Int8DynamicActivationInt8WeightConfig, "int8-weight-only": Int8WeightOnlyConfig,
            "float": None}[name]


LOWERING = {"int8-dynamic": "inductor", "int8-weight-only": "eager", "float": "inductor"}
SLOW_ON_INDUCTOR = ("int8-weight-only: inductor 2.13 + torchao 0.18 on this CPU run 4 uncached steps of flux-bench "
                    "in 12.5 s, eager in 0.76 s (steady state); it is measured on eager lowering")


def _quantized_loader(quant: str):
    """``load_workload`` for ``bench_model``: the same workload, its transformer quantized, named by the config."""

    def load(name: str, **kwargs):
        workload = load_workload(name, **kwargs)
        config = _config(quant)
        if config is not None:
            from torchao.quantization import quantize_

            quantize_(workload.transformer, config())
        workload.name = f"{workload.name} ({quant})"
        return workload

    return load


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quant", nargs="+", default=["int8-dynamic", "int8-weight-only", "float"],
                        choices=sorted(LOWERING))
    parser.add_argument("--policy", default="taylorseer")
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=5, help="alternated timed generations per row")
    parser.add_argument("--lowering", choices=("eager", "inductor"), help="for every config (default: per config)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/quantized-cpu/speed.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    meta = run_meta(argv, program="python examples/quantized_speed.py")
    meta["versions"].update({"torchao": version("torchao"), "diffusers": version("diffusers")})
    meta["machine"]["load_average_at_start"] = os.getloadavg()[0]  # another process on the cores skews the speed
    meta["policy"], meta["quantization"] = args.policy, {}
    meta["notes"] = [SLOW_ON_INDUCTOR] if "int8-weight-only" in args.quant else []
    combined = BenchResult()
    for quant in args.quant:
        lowering = args.lowering or LOWERING[quant]
        meta["quantization"][quant] = {"config": getattr(_config(quant), "__name__", None), "lowering": lowering}
        torch._dynamo.reset()
        with mock.patch.object(matrix, "load_workload", _quantized_loader(quant)):
            result = matrix.bench_model(MODEL, [C4DPreset(args.policy)], repeats=args.repeats, steps=args.steps,
                                        lowering=lowering, progress=False)
        combined.rows += result.rows
        combined.skipped += result.skipped
        cached = next(r for r in result.rows if r.family == "c4d")
        print(f"{cached.model}, {lowering}: uncached {cached.uncached_seconds:.3f} s, {args.policy} "
              f"{cached.seconds:.3f} s per generation: {cached.measured_speedup:.2f}x measured "
              f"({cached.ideal_speedup:.2f}x ideal), PSNR {cached.psnr_mean:.1f} dB", flush=True)
        write_json(combined, args.out, meta)  # after every config: a long run keeps what it has measured
        args.out.with_suffix(".md").write_text(markdown(combined) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
