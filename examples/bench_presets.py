"""Every caching preset against the uncached compiled model, on random-weight model configs.

Speed figures (measured vs ideal) mean something on random weights; PSNR here only shows the
output stays close — fidelity is judged on the trained reference models.

    python examples/bench_presets.py --model flux-bench --steps 28 --repeats 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from c4d_compile import list_policies
from c4d_compile.bench.speed import markdown, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="flux-bench")
    parser.add_argument("--policies", nargs="*", default=list_policies())
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lowering", default="inductor", choices=["inductor", "eager"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--out", default=None, help="JSON file for the rows")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = measure(args.model, args.policies, steps=args.steps, repeats=args.repeats, lowering=args.lowering,
                   device=args.device)
    print(markdown(rows))
    out = Path(args.out or f"bench-out/presets_{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([r.as_dict() for r in rows], indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
