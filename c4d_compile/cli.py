"""``c4d`` command line: ``c4d inspect MODEL``, ``c4d policies``."""

from __future__ import annotations

import argparse
import sys

from .errors import C4DError


def _inspect(args: argparse.Namespace) -> int:
    from .inspect_model import inspect_target

    results = inspect_target(args.model, args.policy)
    for i, (analysis, plan) in enumerate(results):
        print(f"== graph {i + 1} of {len(results)} ==")
        print(analysis.report())
        if plan is not None:
            print(f"plan for {args.policy!r}:")
            print(plan.describe())
    return 0


def _policies(args: argparse.Namespace) -> int:
    from .policies import get_policy, list_policies

    for name in list_policies():
        policy = get_policy(name)
        print(f"{name:<18} region={policy.region.value:<7} {policy.description}")
        print(f"{'':<18} options: {policy.options()}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    r = run_demo(args.model, args.policy, steps=args.steps, per_class=args.per_class, repeats=args.repeats,
                 lowering=args.lowering, out=args.out)
    print(f"{r['policy']} on the trained {r['model']} reference model, {r['steps']} steps "
          f"({r['full_steps']} computed): measured speedup {r['measured_speedup']:.2f}x "
          f"(ideal {r['ideal_speedup']:.2f}x, {args.lowering} lowering, CPU)")
    print(f"PSNR vs uncached: cached {r['psnr_cached_db']:.2f} dB, uncached with {r['full_steps']} steps "
          f"{r['psnr_fewer_steps_db']:.2f} dB; class accuracy of cached samples {100 * r['accuracy_cached']:.0f} %")
    print(f"picture: {r['picture']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="c4d", description="feature caching for diffusion transformers")
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser("inspect", help="show what the passes find in a model's graph")
    inspect.add_argument("model", help="a bundled tiny config (e.g. flux, wan) or module:factory -> (model, kwargs)")
    inspect.add_argument("--policy", default="taylorseer-lite", help="policy whose cache plan to show")
    inspect.set_defaults(func=_inspect)
    demo = sub.add_parser("demo", help="digits from a trained reference model: uncached, cached, fewer steps")
    demo.add_argument("--model", default="flux", help="reference model: flux or dit")
    demo.add_argument("--policy", default="taylorseer")
    demo.add_argument("--steps", type=int, default=50)
    demo.add_argument("--per-class", type=int, default=2)
    demo.add_argument("--repeats", type=int, default=3)
    demo.add_argument("--lowering", default="eager", help="eager or inductor (both sides)")
    demo.add_argument("--out", default="bench-out/demo.png")
    demo.set_defaults(func=_demo)
    policies = sub.add_parser("policies", help="list the presets and their options")
    policies.set_defaults(func=_policies)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except C4DError as err:
        print(f"c4d: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
