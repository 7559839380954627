"""The equal-compute study's summary (``c4d bench --budgets``): per model, grid and budget, ``auto`` against
the best fixed preset, the best peer and the uncached model at the same compute, and a plot of fidelity
against compute.

Rows of the study carry their budget in their label (``auto@10``, ``taylorseer @10``, ``taylorseer
calibrated@10``, ``diffusers-taylorseer@10``: ``plans.BenchPlan._budget_methods``). Every "vs fewer steps" is
the row's mean PSNR minus that of the uncached model run with ceil(the row's FLOP-equivalent steps)
(``matrix.equal_compute``).
"""

from __future__ import annotations

import re
from pathlib import Path

from .matrix import BenchResult, BenchRow, equal_compute
from .report import save_figure

_BUDGET = re.compile(r"@(\d+)$")
PEER_FAMILIES = ("diffusers", "cache-dit")


def budget_of(row: BenchRow) -> int | None:
    found = _BUDGET.search(row.method)
    return int(found.group(1)) if found else None


def _best(rows: list[BenchRow]) -> BenchRow | None:
    scored = [r for r in rows if r.fewer_steps_db is not None]
    return max(scored, key=lambda r: r.fewer_steps_db, default=None)


def _cell(row: BenchRow | None, name: bool = True) -> str:
    if row is None:
        return "–"
    label = f"`{row.method}` " if name else ""
    return f"{label}{row.psnr_mean:.1f} / {row.psnr_worst:.1f} ({row.fewer_steps_db:+.1f})"


def _at_budgets(result: BenchResult):
    """Per model (grid) and budget, largest first: the study's rows at that budget, the ``auto`` row and the
    uncached row at auto's compute (None where absent)."""
    for model in dict.fromkeys(r.model for r in result.rows):
        rows = [r for r in result.rows if r.model == model]
        fewer = {r.steps: r for r in rows if r.family == "fewer steps"}
        for budget in sorted({b for r in rows if (b := budget_of(r)) is not None}, reverse=True):
            at = [r for r in rows if budget_of(r) == budget]
            auto = next((r for r in at if r.method == f"auto@{budget}"), None)
            baseline = fewer.get(equal_compute(auto.steps, auto.ideal_speedup)) if auto else None
            yield model, budget, at, auto, baseline


def budget_summary(result: BenchResult) -> str:
    """One line per model (grid) and budget: PSNR mean / worst dB (vs fewer steps at equal compute)."""
    lines = ["| model (grid) | full steps | fewer steps at auto's compute | `auto` | `auto` fast | best preset "
             "(default schedule) | best c4d row without auto | best peer | auto chose |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, budget, at, auto, baseline in _at_budgets(result):
        fast = next((r for r in at if r.method == f"auto fast@{budget}"), None)
        c4d = [r for r in at if r.family == "c4d" and not r.method.startswith("auto")]
        presets = [r for r in c4d if r.method.endswith(f" @{budget}")]
        peers = [r for r in at if r.family in PEER_FAMILIES]
        base = "–" if baseline is None else f"{baseline.steps} steps: {baseline.psnr_mean:.1f} / " \
                                            f"{baseline.psnr_worst:.1f}"
        chose = auto.settings.get("chosen", "–") if auto else "–"
        lines.append(f"| {model} | {budget} | {base} | {_cell(auto, False)} | {_cell(fast, False)} | "
                     f"{_cell(_best(presets))} | {_cell(_best(c4d))} | {_cell(_best(peers))} | {chose} |")
    return "\n".join(lines)


def _gain(row: BenchRow | None) -> str:
    return "–" if row is None or row.fewer_steps_db is None else f"{row.fewer_steps_db:+.1f}"


def preset_table(result: BenchResult) -> str:
    """Every row of the study as a gain over fewer steps: per model (grid) and budget, ``auto`` (default and
    fast effort), each preset at its default / ``schedule="paper"`` / calibrated schedule, and each peer."""
    rows = [r for r in result.rows if budget_of(r) is not None]
    presets = list(dict.fromkeys(r.method.rsplit(" @", 1)[0] for r in rows if r.family == "c4d" and " @" in r.method))
    peers = list(dict.fromkeys(r.method.rsplit("@", 1)[0] for r in rows if r.family in PEER_FAMILIES))
    head = ["model (grid)", "full steps of 50", "uncached, that many steps", "`auto` / fast",
            *(f"`{p}`" for p in presets), *peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model in dict.fromkeys(r.model for r in rows):
        fewer = {r.steps: r for r in result.rows if r.model == model and r.family == "fewer steps"}
        for budget in sorted({budget_of(r) for r in rows if r.model == model}, reverse=True):
            at = {r.method: r for r in rows if r.model == model and budget_of(r) == budget}
            base = fewer.get(budget)
            cells = [model, str(budget), "–" if base is None else f"{base.psnr_mean:.1f} dB",
                     f"{_gain(at.get(f'auto@{budget}'))} / {_gain(at.get(f'auto fast@{budget}'))}"]
            cells += [" / ".join(_gain(at.get(f"{p} {kind}@{budget}")) for kind in ("", "paper", "calibrated"))
                      for p in presets]
            cells += [_gain(at.get(f"{p}@{budget}")) for p in peers]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(result: BenchResult) -> str:
    """What ``auto`` chose and what the calibration cost, per model (grid), budget and effort: the calibration's
    own PSNR beside the scored one (the transfer gap to unseen seeds), its compute in FLOP-equivalent uncached
    generations, and its wall time (which on a shared machine says less than the FLOPs)."""
    lines = ["| model (grid) | full steps of 50 | effort | chose | PSNR on the calibration seed / scored | "
             "cost: uncached generations (FLOPs) | seconds |", "|---|---|---|---|---|---|---|"]
    for row in result.rows:
        if row.family != "c4d" or not row.method.startswith("auto") or "calibration_seconds" not in row.settings:
            continue
        s = row.settings
        effort = "fast" if row.method.startswith("auto fast") else "default"
        lines.append(f"| {row.model} | {budget_of(row)} | {effort} | {s['chosen']} | {s['calibration_psnr']:.1f} / "
                     f"{row.psnr_mean:.1f} | {s['calibration_flop_generations']:.1f} | "
                     f"{s['calibration_seconds']:.0f} |")
    return "\n".join(lines)

_STYLE = {  # what, matched on the row -> (marker, colour, size)
    "auto": ("*", "crimson", 120),
    "preset": ("o", "tab:blue", 28),
    "calibrated": ("o", "lightskyblue", 22),
    "paper": ("o", "0.75", 18),
    "peer": ("^", "tab:orange", 30),
}


def _kind(row: BenchRow) -> str | None:
    if row.family in PEER_FAMILIES:
        return "peer"
    if row.family != "c4d" or budget_of(row) is None:
        return None
    if row.method.startswith("auto"):
        return "auto"
    return "calibrated" if " calibrated@" in row.method else "paper" if " paper@" in row.method else "preset"


def plot_budgets(result: BenchResult, path: Path) -> bool:
    """One panel per model (grid): mean PSNR against FLOP-equivalent steps, the uncached model's curve over
    step counts, every row of the study; False (nothing written) without budget rows."""
    models = [m for m in dict.fromkeys(r.model for r in result.rows)
              if any(budget_of(r) is not None for r in result.rows if r.model == m)]
    if not models:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(models))
    rows_of_panels = -(-len(models) // cols)
    fig, axes = plt.subplots(rows_of_panels, cols, figsize=(5.2 * cols, 4.2 * rows_of_panels), squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, model in zip(axes.flat, models):
        rows = [r for r in result.rows if r.model == model]
        fewer = sorted((r for r in rows if r.family == "fewer steps"), key=lambda r: r.flop_steps)
        ax.plot([r.flop_steps for r in fewer], [r.psnr_mean for r in fewer], color="0.3", marker="s", ms=4,
                label="uncached, fewer steps")
        for kind, (marker, colour, size) in _STYLE.items():
            pts = [r for r in rows if _kind(r) == kind]
            if pts:
                ax.scatter([r.flop_steps for r in pts], [r.psnr_mean for r in pts], marker=marker, color=colour,
                           s=size, label=kind, zorder=3, edgecolors="black", linewidths=0.3)
        for r in rows:
            if _kind(r) == "auto":
                ax.annotate(r.method, (r.flop_steps, r.psnr_mean), fontsize=7, xytext=(4, 2),
                            textcoords="offset points")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("compute: FLOP-equivalent steps of 50")
        ax.set_ylabel("PSNR vs uncached 50 steps, mean (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right")
    save_figure(fig, path, dpi=120)
    return True


def _short(row: BenchRow | None) -> str:
    if row is None:
        return "–"
    name = re.sub(r"\s*@\d+$", "", row.method)
    return f"`{name}` {row.psnr_mean:.1f} ({row.fewer_steps_db:+.1f})"


def headline_table(result: BenchResult) -> str:
    """The README's first table: per model (grid) and budget, the mean PSNR of the uncached model at auto's
    compute, of ``auto``, of the best preset at its default schedule and of the best peer (each cached row's
    gain over the uncached model at ceil(its own FLOP-equivalent steps) in brackets)."""
    lines = ["| model (grid) | full steps of 50 | uncached at equal compute | `auto` | best preset | best peer |",
             "|---|---|---|---|---|---|"]
    for model, budget, at, auto, baseline in _at_budgets(result):
        presets = [r for r in at if r.family == "c4d" and r.method.endswith(f" @{budget}")]
        peers = [r for r in at if r.family in PEER_FAMILIES]
        base = "–" if baseline is None else f"{baseline.psnr_mean:.1f} ({baseline.steps} steps)"
        auto_cell = "–" if auto is None else f"**{auto.psnr_mean:.1f}** ({auto.fewer_steps_db:+.1f})"
        lines.append(f"| {model} | {budget} | {base} | {auto_cell} | {_short(_best(presets))} | "
                     f"{_short(_best(peers))} |")
    return "\n".join(lines)
