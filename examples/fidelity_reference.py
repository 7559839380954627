"""Fidelity of every preset on the trained reference models, at matched compute, against fewer steps.

By default every preset runs the same schedule (warm-up 3, interval 6 over 50 steps: 10 full steps,
a 5x compute reduction) so the forecasters are compared on equal terms; ``--defaults`` uses each
preset's own schedule instead. Each row is followed by the uncached model run with as many steps.

    python examples/fidelity_reference.py --model dit
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from c4d_compile import list_policies
from c4d_compile.bench.fidelity import markdown, measure_fidelity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dit", choices=["dit", "flux"])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--interval", type=int, default=6)
    parser.add_argument("--defaults", action="store_true", help="each preset's own schedule")
    parser.add_argument("--per-class", type=int, default=4)
    args = parser.parse_args()
    schedule = {} if args.defaults else {"warmup": args.warmup, "interval": args.interval}
    policies = {name: (name, schedule) for name in list_policies()}
    rows = measure_fidelity(args.model, policies, steps=args.steps, per_class=args.per_class)
    print(markdown(rows))
    out = Path(f"bench-out/fidelity_{args.model}{'_defaults' if args.defaults else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([r.as_dict() for r in rows], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
