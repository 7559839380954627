"""Export bundled configs and check each along the sampling trajectory: the figures of docs/export.md.

Per config, what ``c4d export MODEL --policy POLICY --steps STEPS --check`` runs (``export``, then
``onnx_export.compare.check_export``: the exported program and the torch backend each sample from the same
latent, every output feeding the next latent; the largest output difference at any step, the final latent's
difference, onnxruntime's speed cached and uncached), written as raw JSON with how the run was made::

    python examples/export_check.py --steps 28 --repeats 5 --threads 2 --out docs/results/export-cpu/export.json
    c4d publish                                     # renders docs/export.md's table from that file

The file is rewritten after every config, so a long run keeps what it has measured.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch

from c4d_compile.bench.export_report import ExportResults, export_row, write_export_json
from c4d_compile.bench.report import run_meta
from c4d_compile.onnx_export import export
from c4d_compile.onnx_export.compare import check_export
from c4d_compile.zoo.tiny_diffusers import TINY_MODELS, get_tiny_model


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(TINY_MODELS), help="bundled configs (default: all)")
    parser.add_argument("--policy", default="taylorseer")
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=5, help="alternated generations per runner for the speed")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/export-cpu/export.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = [get_tiny_model(name) for name in args.models]  # every name checked before anything runs
    meta = run_meta(argv)
    meta["command"] = shlex.join(["python", "examples/export_check.py", *argv])  # run_meta names `c4d` commands
    meta["versions"]["onnxruntime"] = version("onnxruntime")
    meta["machine"]["load_average_at_start"] = os.getloadavg()[0]  # another process on the cores skews the speed
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for spec in specs:
            model, inputs = spec.build(), spec.make_inputs()
            torch._dynamo.reset()
            out = Path(work) / spec.name
            result = export(model, inputs, args.policy, out, num_steps=args.steps, progress=False)
            check = check_export(out, model, spec, inputs, args.steps, args.policy, repeats=args.repeats)
            rows.append(export_row(spec.name, args.policy, result, check))
            print(f"{spec.name}: {result.summary()}\n  {check.summary()}", flush=True)
            write_export_json(ExportResults(meta, rows), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
