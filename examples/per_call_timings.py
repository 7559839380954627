"""What one call of a cached model costs on the host: per call of the compiled transformer, the time of a full step,
of a cached step and of the plain compiled model, on a model so small that the time is overhead (the tiny Wan: one
uncached call is well under a millisecond, most of it Python and Dynamo's guards)::

    python examples/per_call_timings.py --out docs/results/per-call-cpu/per_call.json
    c4d publish                                    # renders the README's table from that file

Each lowering compiles the cached model (``c4d_backend(policy, lowering=...)``) and the plain model (the same
lowering without c4d), warms both up for one generation, then alternates their timed generations and times every
call with ``time.perf_counter``; a cached model's call is filed under the variant it ran (``stats().last``). The
host overhead of a call is the time spent in the Runtime (the step program: clock, state, decision, stats) minus
the time of the compiled variants it ran.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from c4d_compile import c4d_backend
from c4d_compile.bench.per_call_report import CallTimes, PerCallResults, per_call_table, write_per_call_json
from c4d_compile.bench.report import run_meta
from c4d_compile.bench.speed import generate
from c4d_compile.runtime.executor import Runtime
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

LOWERINGS = ("inductor", "eager")  # each is also the name of torch.compile's backend for the plain model


def _timing(model, times: list[float]):
    def call(**kwargs):
        start = time.perf_counter()
        out = model(**kwargs)
        times.append(time.perf_counter() - start)
        return out

    return call


@contextlib.contextmanager
def _runtime_overhead(backend, overheads: list[float]):
    """Per call of a cached graph: the Runtime's time minus its compiled variants' own, appended to ``overheads``.
    Patches ``Runtime.__call__`` (looked up on the class) and the backend's variant callables while it is open."""
    inner = [0.0]

    def timed_variant(fn):
        def call(*args):
            start = time.perf_counter()
            out = fn(*args)
            inner[0] += time.perf_counter() - start
            return out
        return call

    original = Runtime.__call__

    def timed_call(self, *args):
        inner[0] = 0.0
        start = time.perf_counter()
        out = original(self, *args)
        overheads.append(time.perf_counter() - start - inner[0])
        return out

    saved = [(v, v.fn) for r in backend.runtimes for v in r.variants.values()]
    for variant, fn in saved:
        object.__setattr__(variant, "fn", timed_variant(fn))  # a frozen dataclass: the Runtime holds the instance
    Runtime.__call__ = timed_call
    try:
        yield
    finally:
        Runtime.__call__ = original
        for variant, fn in saved:
            object.__setattr__(variant, "fn", fn)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(lowering: str, kind: str, seconds: list[float]) -> CallTimes:
    us = [1e6 * s for s in seconds]
    return CallTimes(lowering, kind, len(us), round(statistics.median(us), 1), round(_percentile(us, 0.1), 1),
                     round(_percentile(us, 0.9), 1))


def measure(model_name: str, policy: str, lowering: str, steps: int, generations: int, **overrides) -> list[CallTimes]:
    """Times per call kind for one lowering: full and cached calls of the cached model, every call of the plain one."""
    spec = get_tiny_model(model_name)
    model, inputs = spec.build(), spec.make_inputs()
    torch._dynamo.reset()
    backend = c4d_backend(policy, lowering=lowering, num_steps=steps, **overrides)
    cached = torch.compile(model, backend=backend)
    plain = torch.compile(model, backend=lowering)
    generate(cached, spec, inputs, steps)  # compile + warm-up
    generate(plain, spec, inputs, steps)
    by_kind: dict[str, list[float]] = {"full": [], "cached": [], "plain": [], "overhead-full": [],
                                       "overhead-cached": []}
    for _ in range(generations):
        times: list[float] = []
        generate(_timing(cached, times), spec, inputs, steps)
        kinds = [k for ctx in backend.stats().last.contexts.values() for k in ctx.kinds]
        if len(kinds) != len(times):
            raise RuntimeError(f"{len(times)} calls timed but {len(kinds)} recorded: another context ran")
        for kind, seconds in zip(kinds, times):
            by_kind["full" if kind == "full" else "cached"].append(seconds)
        generate(_timing(plain, by_kind["plain"]), spec, inputs, steps)
        overheads: list[float] = []  # a generation of its own: the patched calls are not the timed ones
        with _runtime_overhead(backend, overheads):
            generate(cached, spec, inputs, steps)
        kinds = [k for ctx in backend.stats().last.contexts.values() for k in ctx.kinds]
        for kind, seconds in zip(kinds, overheads):
            by_kind["overhead-full" if kind == "full" else "overhead-cached"].append(seconds)
    return [_row(lowering, kind, seconds) for kind, seconds in by_kind.items() if seconds]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="wan")
    parser.add_argument("--policy", default="taylorseer-lite")
    parser.add_argument("--schedule", default="paper", help="the preset's schedule ('paper': warm-up + interval)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--generations", type=int, default=7, help="timed generations of each model")
    parser.add_argument("--lowerings", nargs="+", default=["inductor", "eager"], choices=LOWERINGS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("docs/results/per-call-cpu/per_call.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    meta = run_meta(argv, program="python examples/per_call_timings.py")
    meta["machine"]["load_average_at_start"] = os.getloadavg()[0]  # another process on the cores skews the times
    results = PerCallResults(meta, args.model, args.policy, args.steps, args.generations)
    for lowering in args.lowerings:
        results.rows += measure(args.model, args.policy, lowering, args.steps, args.generations,
                                schedule=args.schedule)
        write_per_call_json(results, args.out)  # after every lowering: a long run keeps what it has measured
    print(per_call_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
