"""Every real diffusers pipeline of the test suite through ``enable_cache``: the figures of the README's
pipelines table, written as raw JSON with how the run was made::

    python examples/pipelines_check.py --out docs/results/pipelines-cpu/pipelines.json
    c4d publish                                     # renders the README's table from that file

Per pipeline (tiny random-weight components built in code, prompt embeddings passed in, eager lowering): the
uncompiled pipeline and ``interval=1`` over 3 steps (bit for bit?), the default preset over ``--steps`` (graphs,
full / cached steps per guidance context, warnings), then a second call with another seed and step count
against the same call after ``backend.reset()``. The pipelines are those of ``tests/support/pipelines.py``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the pipelines the tests run

from support.pipelines import PIPELINES, run  # noqa: E402

from c4d_compile import C4DWarning, enable_cache  # noqa: E402
from c4d_compile.bench.pipelines_report import PipelineResults, PipelineRow, write_pipelines_json  # noqa: E402
from c4d_compile.bench.report import run_meta  # noqa: E402


def check(name: str, steps: int) -> PipelineRow:
    case = PIPELINES[name]
    torch._dynamo.reset()
    reference = run(case.build(), case, steps=3, seed=0)
    pipe = case.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", C4DWarning)
        enable_cache(pipe, "taylorseer", lowering="eager", interval=1)
        exact = torch.equal(run(pipe, case, steps=3, seed=0), reference)
    torch._dynamo.reset()
    pipe = case.build()
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(pipe, case, steps=steps, seed=0)
    stats = backend.stats()
    contexts = {name: (c.full_steps, c.cached_steps) for name, c in stats.last.contexts.items()}
    graphs = stats.graphs, stats.cached_graphs  # of the first generation
    second = run(pipe, case, steps=steps - 2, seed=1)
    backend.reset()
    independent = torch.equal(second, run(pipe, case, steps=steps - 2, seed=1))
    return PipelineRow(name, case.guidance, steps, *graphs, dict(stats.opaque_modules),
                       exact, contexts, independent,
                       [str(w.message) for w in caught if issubclass(w.category, C4DWarning)])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", nargs="+", default=sorted(PIPELINES), choices=sorted(PIPELINES))
    parser.add_argument("--steps", type=int, default=8, help="steps of the default-preset generation")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("docs/results/pipelines-cpu/pipelines.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = PipelineResults(run_meta(argv, program="python examples/pipelines_check.py"))
    for name in tqdm(args.pipelines, unit="pipeline"):
        results.rows.append(check(name, args.steps))
        write_pipelines_json(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
