"""The tables of ``docs/calibration.md``'s "why it measures" section, from the output of
``examples/final_error_objectives.py`` (``docs/results/objectives.json``)."""

from __future__ import annotations

import json
from pathlib import Path


def load_objectives(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def objectives_table(result: dict) -> str:
    """Per budget: each search's schedule, its summed per-segment final error (the additive prediction), its
    measured final error on the calibration seed and its PSNR on the scored images; then how well each
    additive objective ranks random schedules by their measured final error."""
    lines = ["| full steps of {steps} | schedule from | summed segment final error (additive prediction) | measured "
             "final error | scored PSNR mean / worst |".format(steps=result["steps"]), "|---|---|---|---|---|"]
    for budget, at in result["budgets"].items():
        for name, search in at["searches"].items():
            psnr, predicted = search["scored_psnr"], search["predicted_additive"]
            predicted = f"{predicted:.3g}" if predicted is not None else f"– (a segment over {result['span']} steps)"
            lines.append(f"| {budget} | {name} | {predicted} | {search['measured']:.3g} | "
                         f"{psnr['mean']:.2f} / {psnr['worst']:.2f} |")
    names = list(next(iter(result["budgets"].values()))["rank_correlation"])
    lines += ["", "| full steps | random schedules | " + " | ".join(f"rank correlation: {n}" for n in names) + " |",
              "|---|---|" + "---|" * len(names)]
    for budget, at in result["budgets"].items():
        ranks = at["rank_correlation"]
        lines.append(f"| {budget} | {at['random_schedules']} | " + " | ".join(f"{ranks[n]:.2f}" for n in names) + " |")
    return "\n".join(lines)
