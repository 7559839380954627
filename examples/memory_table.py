"""The cache memory of every preset on a model, from its plan (exact: nothing is run or timed)::

    python examples/memory_table.py --out docs/results/memory-cpu/memory.json
    c4d publish                                    # renders the README's table from that file

The model's graph is captured once (Dynamo), analysed once, and each preset at its defaults is planned on it
(``make_plan``, what the backend does at compile time); a preset that does not plan on the model is listed with
the typed error it raised.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from c4d_compile.bench.memory_report import MemoryResults, PresetMemory, memory_table, write_memory_json
from c4d_compile.bench.report import run_meta
from c4d_compile.compiler.passes.analyze import analyze
from c4d_compile.compiler.plan import make_plan
from c4d_compile.errors import C4DError
from c4d_compile.inspect_model import trace_graphs
from c4d_compile.policies.registry import get_policy, list_policies
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


def plan_memory(model: str, num_steps: int) -> list[PresetMemory]:
    spec = get_tiny_model(model)
    (gm,) = trace_graphs(spec.build().eval(), spec.make_inputs())
    analysis = analyze(gm)
    rows = []
    for name in list_policies(fitted=False):
        try:
            plan = make_plan(gm, analysis, get_policy(name, num_steps=num_steps))
        except C4DError as err:
            rows.append(PresetMemory(name, "", 0, 0, {}, 0, refused=f"{type(err).__name__}: {err}"))
            continue
        rows.append(PresetMemory(name, plan.region.value, len(plan.features), plan.num_slots, plan.bytes_by_kind,
                                 plan.state_bytes))
        print(f"{name}: {plan.state_bytes / 2**20:.2f} MiB per context", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="flux-bench")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("docs/results/memory-cpu/memory.json"))
    args = parser.parse_args(argv)
    meta = run_meta(sys.argv[1:] if argv is None else argv, program="python examples/memory_table.py")
    results = MemoryResults(meta, args.model, str(torch.get_default_dtype()).replace("torch.", ""), args.steps,
                            plan_memory(args.model, args.steps))
    write_memory_json(results, args.out)
    print(memory_table(results))


if __name__ == "__main__":
    main()
