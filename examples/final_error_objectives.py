"""Which objective predicts the final sample's error of a cached run? Measured on a trained reference model.

    python examples/final_error_objectives.py --out docs/results/objectives.json     # about 15 min on 2 CPU cores

The output-region cache (a forecast of the model output from its last full steps; every block skipped on cached
steps) is written out plainly here, outside the library, so every run below is cheap and exact: the cached steps
are arithmetic on recorded outputs. On the trained flux reference model (Euler, 50 steps), calibration seed 1000
(10 images), scored on seed 0 (40 images), order-1 Taylor in the step index, it measures:

* **additivity**: the sum over a schedule's cached segments of each segment's own final error ("that segment
  cached, every other step computed": the per-edge final error of LeMiCa, the path error DPCache tabulates) against
  the final error of the run that caches them all;
* **ranking**: over random schedules of the budget, the rank correlation of each objective with the measured final
  error — the forecast error of the output (what ``c4d calibrate`` with a preset minimises), the latent error at
  each segment's end, the summed per-segment final error, the worst segment's;
* **what each search gives**: the even spread, the exact search for the feature error, the exact search for the
  summed per-segment final error (a dynamic programme over pairs of full steps, exact for that additive objective),
  the exact search for LeMiCa's lexicographic minimax of the same per-segment errors, and the local search on the
  measured final error that ``policy="auto"`` runs (``calibration/refine.py``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from c4d_compile.bench.report import run_meta
from c4d_compile.calibration.refine import refine
from c4d_compile.policies.forecasters import Taylor
from c4d_compile.policies.schedules import spread_evenly
from c4d_compile.reference.registry import load_reference_model
from c4d_compile.reference.sampling import class_labels, initial_noise, time_grid

FORECASTER = Taylor(order=1)
SLOTS = 2


class Trajectory:
    """Uncached Euler sampling with every latent and output kept; cached runs replayed from it."""

    def __init__(self, model, labels: torch.Tensor, seed: int, steps: int, shift: float):
        self.model, self.labels, self.steps = model, labels, steps
        self.grid = time_grid(steps, shift)
        self.dt = self.grid[1:] - self.grid[:-1]
        x = initial_noise(labels.shape[0], seed)
        xs, vs = [x], []
        for i in range(steps):
            vs.append(self.velocity(x, i))
            x = x + self.dt[i] * vs[-1]
            xs.append(x)
        self.xs, self.vs = torch.stack(xs), torch.stack(vs)

    @torch.no_grad()
    def velocity(self, x: torch.Tensor, i: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        labels = self.labels if labels is None else labels
        return self.model(x, torch.full((x.shape[0],), float(self.grid[i])), labels)

    def forecast(self, s: int, history: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
        weights = FORECASTER.weights(float(s), [float(h) for h, _ in history])
        return sum(w * v for w, (_, v) in zip(weights, history))

    def cached_run(self, full_steps) -> torch.Tensor:
        """The final sample of the run computing ``full_steps`` and forecasting the output elsewhere."""
        full, x, history = set(full_steps), self.xs[0], []
        for s in range(self.steps):
            if s in full or not history:
                v = self.velocity(x, s)
                history = [(s, v), *history][:SLOTS]
            else:
                v = self.forecast(s, history)
            x = x + self.dt[s] * v
        return x

    def error(self, full_steps) -> float:
        return float(((self.cached_run(full_steps) - self.xs[-1]) ** 2).sum())


def segments(full_steps, steps: int) -> list[tuple[int | None, int, int]]:
    """(previous full step, full step, next full step or the end) of every cached stretch."""
    full = sorted(full_steps)
    return [(full[k - 1] if k else None, i, j) for k, (i, j) in enumerate(zip(full, [*full[1:], steps])) if j > i + 1]


def segment_deviation(traj: Trajectory, p, i, j) -> torch.Tensor:
    """The latent at j when only i+1..j-1 are forecast, from the full steps (i, p), everything before exact."""
    history = [(i, traj.vs[i])] + ([(p, traj.vs[p])] if p is not None else [])
    x = traj.xs[i + 1].clone()
    for s in range(i + 1, j):
        x = x + traj.dt[s] * traj.forecast(s, history)
    return x


def segment_final_errors(traj: Trajectory, span: int) -> dict[tuple, float]:
    """Final error of every segment (p, i, j) with j - i <= span and i - p <= span: its latent deviation carried
    to the end by the uncached model, all segments ending at one step batched together."""
    by_end: dict[int, list] = {}
    for i in range(traj.steps):
        for p in [None] if i == 0 else range(max(0, i - span), i):
            for j in range(i + 2, min(traj.steps, i + span) + 1):
                by_end.setdefault(j, []).append(((p, i, j), segment_deviation(traj, p, i, j)))
    costs, images = {}, traj.labels.shape[0]
    for j, entries in sorted(by_end.items()):
        x = torch.cat([x for _, x in entries])
        labels = traj.labels.repeat(len(entries))
        for s in range(j, traj.steps):
            x = x + traj.dt[s] * traj.velocity(x, s, labels)
        err = ((x - traj.xs[-1].repeat(len(entries), 1, 1, 1)) ** 2).flatten(1).sum(1).view(len(entries), images)
        costs.update({key: float(e) for (key, _), e in zip(entries, err.sum(1))})
    return costs


def additive(costs: dict, full_steps, steps: int) -> float | None:
    """The summed per-segment final error; None when a segment is longer than the tabulated span."""
    parts = [costs.get(seg) for seg in segments(full_steps, steps)]
    return None if None in parts else sum(parts)


def worst_segment(costs: dict, full_steps, steps: int) -> float | None:
    """The largest per-segment final error (what LeMiCa's minimax puts first)."""
    parts = [costs.get(seg) for seg in segments(full_steps, steps)]
    return None if None in parts else max(parts, default=0.0)


def feature_error(traj: Trajectory, full_steps) -> float:
    total = 0.0
    for p, i, j in segments(full_steps, traj.steps):
        history = [(i, traj.vs[i])] + ([(p, traj.vs[p])] if p is not None else [])
        total += sum(float(((traj.forecast(s, history) - traj.vs[s]) ** 2).sum()) for s in range(i + 1, j))
    return total


def latent_error(traj: Trajectory, full_steps) -> float:
    return sum(float(((segment_deviation(traj, *seg) - traj.xs[seg[2]]) ** 2).sum())
               for seg in segments(full_steps, traj.steps) if seg[2] < traj.steps)


def best_additive(costs: dict, steps: int, budget: int, span: int) -> tuple[int, ...]:
    """The exact minimum of the summed segment costs: a dynamic programme over (previous full step, full step)."""
    best = {(None, 0): (0.0, (0,))}
    for _ in range(budget - 1):
        nxt = {}
        for (p, i), (value, path) in best.items():
            for j in range(i + 1, min(steps - 1, i + span) + 1):
                cost = 0.0 if j == i + 1 else costs.get((p, i, j))
                if cost is not None and ((i, j) not in nxt or value + cost < nxt[(i, j)][0]):
                    nxt[(i, j)] = (value + cost, (*path, j))
        best = nxt
    finals = [(value + (0.0 if i == steps - 1 else costs.get((p, i, steps), float("inf"))), path)
              for (p, i), (value, path) in best.items()]
    return min(finals)[1]


def best_minimax(costs: dict, steps: int, budget: int, span: int) -> tuple[int, ...]:
    """LeMiCa's search (arXiv 2511.00090): the schedule whose per-segment final errors, sorted worst first, are
    lexicographically smallest — the worst segment as good as it can be, then the next. Exact as a dynamic
    programme over (previous full step, full step): adding one more segment's cost to two sorted vectors keeps
    their lexicographic order, so each state keeps only its smallest vector."""

    def joined(vector: tuple, cost: float) -> tuple:
        return tuple(sorted((*vector, cost), reverse=True))

    best = {(None, 0): ((), (0,))}
    for _ in range(budget - 1):
        nxt = {}
        for (p, i), (vector, path) in best.items():
            for j in range(i + 1, min(steps - 1, i + span) + 1):
                cost = 0.0 if j == i + 1 else costs.get((p, i, j))
                if cost is not None:
                    candidate = (joined(vector, cost), (*path, j))
                    if (i, j) not in nxt or candidate < nxt[(i, j)]:
                        nxt[(i, j)] = candidate
        best = nxt
    finals = [(joined(vector, 0.0 if i == steps - 1 else costs.get((p, i, steps), float("inf"))), path)
              for (p, i), (vector, path) in best.items()]
    return min(finals)[1]


def best_feature(traj: Trajectory, budget: int) -> tuple[int, ...]:
    """The library's exact search for the forecast error of the recorded outputs (``calibration/search.py``)."""
    from c4d_compile.calibration.record import Trajectory as Recorded
    from c4d_compile.calibration.search import best_full_steps, gram, step_costs
    from c4d_compile.policies import Variable

    recorded = Recorded(steps=list(range(traj.steps)), keys=[(float(t),) for t in traj.grid[:-1]],
                        first_key=(float(traj.grid[0]),),
                        samples=[[v.reshape(-1).double()] for v in traj.vs])
    costs = step_costs([(recorded, gram(recorded, 1))], FORECASTER, Variable.STEP, traj.steps)
    return best_full_steps(costs, SLOTS, budget, traj.steps)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="flux")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 5])
    parser.add_argument("--span", type=int, default=14, help="longest segment and anchor gap tabulated")
    parser.add_argument("--random", type=int, default=120, help="random schedules ranked per budget")
    parser.add_argument("--out", default="objectives.json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    model = load_reference_model(args.model)
    calib = Trajectory(model, class_labels(1), 1000, args.steps, 1.0)
    scored = Trajectory(model, class_labels(4), 0, args.steps, 1.0)
    costs = segment_final_errors(calib, args.span)

    def psnr(full_steps) -> dict:
        per_image = ((scored.cached_run(full_steps) - scored.xs[-1]) ** 2).flatten(1).mean(1)
        values = 10 * torch.log10(4.0 / per_image)
        return {"mean": float(values.mean()), "worst": float(values.min())}

    result = {"meta": run_meta(sys.argv, program="python"), "model": args.model, "steps": args.steps,
              "span": args.span, "segments": len(costs), "budgets": {}}
    rng = random.Random(0)
    for budget in args.budgets:
        schedules = {"spread": spread_evenly(budget, args.steps),
                     "exact search, feature error": best_feature(calib, budget),
                     "exact search, summed segment final error": best_additive(costs, args.steps, budget, args.span),
                     "exact search, minimax segment final error (LeMiCa)": best_minimax(costs, args.steps, budget,
                                                                                        args.span)}
        start = schedules["spread"]
        schedules["local search, measured final error"] = refine(calib.error, start, args.steps, 80).full_steps
        searches = {name: {"full_steps": list(s), "predicted_additive": additive(costs, s, args.steps),
                           "measured": calib.error(s), "scored_psnr": psnr(s)} for name, s in schedules.items()}
        pool = {tuple(start)} if additive(costs, start, args.steps) is not None else set()
        while len(pool) < args.random:  # schedules whose every segment is tabulated
            s = (0, *sorted(rng.sample(range(1, args.steps), budget - 1)))
            if additive(costs, s, args.steps) is not None:
                pool.add(s)
        rows = [(calib.error(s), feature_error(calib, s), latent_error(calib, s), additive(costs, s, args.steps),
                 worst_segment(costs, s, args.steps)) for s in sorted(pool)]
        measured = [r[0] for r in rows]
        names = ("feature error", "segment-end latent error", "summed segment final error", "worst segment final error")
        ranks = {name: float(spearmanr(measured, [r[k] for r in rows]).correlation) for k, name in enumerate(names, 1)}
        result["budgets"][str(budget)] = {"searches": searches, "rank_correlation": ranks,
                                          "random_schedules": len(rows)}
        print(json.dumps({budget: {"searches": {k: (v["predicted_additive"], v["measured"], v["scored_psnr"])
                                                for k, v in searches.items()}, "ranks": ranks}}, indent=1), flush=True)
    result["seconds"] = time.time() - started
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
