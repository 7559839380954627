"""What ``c4d bench`` writes: a markdown table per model, a JSON file, a speed-vs-PSNR Pareto plot, and for
signal-driven caches the signal and the decision of every step (why a threshold caches what it caches)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import shlex
import subprocess
from pathlib import Path
from typing import Any

import torch

from ..policies.schedules import SignalSchedule
from .matrix import BenchResult, BenchRow, Skipped

_HEAD = ("| method | family | compiled | steps (computed) | s / gen | measured | ideal | ratio | PSNR mean / worst dB "
         "| vs fewer steps (ceil) | (interpolated) | SSIM | class acc. | Fréchet | cache MiB | compile s |")


def num_text(value: float | None, fmt: str, suffix: str = "") -> str:
    """A number as a table shows it: – when absent, ∞ when infinite (an exact PSNR)."""
    if value is None:
        return "–"
    if math.isinf(value):
        return "∞"
    return f"{value:{fmt}}{suffix}"


def models_of(result: BenchResult, trained: bool) -> list[str]:
    """The models of a result, in order, trained or random: a trained reference model's rows carry class accuracy
    (the shipped classifier reads its digits), a random-weight model's none."""
    return [m for m in dict.fromkeys(r.model for r in result.rows)
            if any(r.model == m and r.accuracy is not None for r in result.rows) == trained]


def _line(r: BenchRow) -> str:
    front = " ★" if r.on_front else ""
    psnr = f"{num_text(r.psnr_mean, '.2f')} / {num_text(r.psnr_worst, '.2f')}"
    computed = num_text(r.computations, ".0f" if r.computations == int(r.computations) else ".1f")
    return (
        f"| {r.method}{front} | {r.family} | {'yes' if r.compiled else 'no'} | {r.steps} ({computed}) | "
        f"{r.seconds:.3f} | {r.measured_speedup:.2f}x | "
        f"{r.ideal_speedup:.2f}x | {r.ratio:.2f} | {psnr} | {num_text(r.fewer_steps_db, '+.2f', ' dB')} | "
        f"{num_text(r.interpolated_db, '+.2f', ' dB')} | "
        f"{num_text(r.ssim_mean, '.3f')} | {num_text(None if r.accuracy is None else 100 * r.accuracy, '.1f', ' %')} | "
        f"{num_text(r.frechet, '.2f')} | {num_text(r.cache_mib, '.2f')} | {num_text(r.compile_seconds, '.1f')} |"
    )


def summary(rows: list[BenchRow]) -> list[str]:
    """The two lines a reader wants first: who is on the front, and who beats fewer steps at equal compute."""
    front = ", ".join(r.method for r in rows if r.on_front)
    versus = ", ".join(f"{r.method} {r.fewer_steps_db:+.2f} dB" for r in rows if r.fewer_steps_db is not None)
    return [f"Pareto front (measured speedup vs mean PSNR): {front}.", "",
            f"Mean PSNR above the uncached model with ceil(the row's FLOP-equivalent steps): {versus}."]


def markdown(result: BenchResult) -> str:
    """One table per model; ★ marks the Pareto front (measured speedup vs mean PSNR)."""
    parts = []
    for model in dict.fromkeys(r.model for r in result.rows):
        rows = [r for r in result.rows if r.model == model]
        head = rows[0]
        parts.append(f"### {model} — {head.lowering} lowering, {head.device}, {head.steps} steps\n")
        parts += [_HEAD, "|" + "---|" * (_HEAD.count("|") - 1)]
        parts += [_line(r) for r in rows]
        parts += ["", *summary(rows), ""]
    if result.skipped:
        parts.append("Skipped:\n")
        parts += [f"- {s.model} / {s.method}: {s.reason}" for s in result.skipped]
    return "\n".join(parts)


def write_json(result: BenchResult, path: Path, meta: dict | None = None) -> None:
    """Every row, every skipped entry and ``meta`` (how the run was made: ``run_meta``)."""
    def clean(value):  # JSON has no infinity
        return None if isinstance(value, float) and math.isinf(value) else value

    data = {
        "meta": meta or {},
        "rows": [{k: clean(v) for k, v in r.as_dict().items()} for r in result.rows],
        "skipped": [vars(s) for s in result.skipped],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> BenchResult:
    """A result ``write_json`` wrote (an infinite PSNR comes back as infinity)."""
    data = json.loads(Path(path).read_text())
    rows = []
    for row in data["rows"]:
        # JSON has no infinity: a PSNR written as null is an exact run (the uncached row, or a cache that never skipped)
        row = {**row, **{k: math.inf for k in ("psnr_mean", "psnr_worst") if row[k] is None}}
        rows.append(BenchRow(**row))
    return BenchResult(rows=rows, skipped=[Skipped(**s) for s in data["skipped"]], meta=data.get("meta", {}))


def run_meta(argv: list[str], program: str = "c4d") -> dict:
    """What a reader needs to reproduce a result: the command (``program`` and its arguments), the commit, the
    machine, the versions, the date."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                                cwd=Path(__file__).parent).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                    text=True, cwd=Path(__file__).parent).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    # quoted as a shell needs it: a row's options (``clusca[clusters=4]``, a codebook's tuples) copy as they ran
    return {"command": " ".join([program, shlex.join(argv)]).rstrip(), "commit": commit, "uncommitted_changes": dirty,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()},
            "versions": {"python": platform.python_version(), "torch": torch.__version__}}


def run_line(meta: dict) -> str:
    """How a published result was made, in one line: its command, commit and date (from ``run_meta``)."""
    commit = str(meta.get("commit") or "?")[:7]
    if meta.get("uncommitted_changes"):
        commit += " with uncommitted changes"
    return f"`{meta.get('command', '?')}` at {commit}, {str(meta.get('date', '?'))[:10]}"


_STYLE = {  # family -> (marker, colour)
    "fewer steps": ("s", "0.45"),
    "c4d": ("o", "tab:blue"),
    "diffusers": ("^", "tab:orange"),
    "cache-dit": ("D", "tab:green"),
}


def plot_pareto(result: BenchResult, path: Path) -> None:
    """One panel per model: measured speedup (x) against mean PSNR vs uncached (y); the front is joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.model for r in result.rows))
    cols = min(2, len(models))
    rows_of_panels = math.ceil(len(models) / cols)
    fig, axes = plt.subplots(rows_of_panels, cols, figsize=(6.5 * cols, 4.8 * rows_of_panels), squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, model in zip(axes.flat, models):
        rows = [r for r in result.rows if r.model == model and r.family != "uncached"]
        for family, (marker, colour) in _STYLE.items():
            pts = [r for r in rows if r.family == family]
            if pts:
                ax.scatter([r.measured_speedup for r in pts], [r.psnr_mean for r in pts], marker=marker,
                           color=colour, label=family, zorder=3, edgecolors="black", linewidths=0.4)
        baseline = sorted((r for r in rows if r.family == "fewer steps"), key=lambda r: r.measured_speedup)
        ax.plot([r.measured_speedup for r in baseline], [r.psnr_mean for r in baseline], color="0.6", ls=":")
        front = sorted((r for r in rows if r.on_front), key=lambda r: r.measured_speedup)
        ax.plot([r.measured_speedup for r in front], [r.psnr_mean for r in front], color="crimson", lw=1,
                label="Pareto front", zorder=2)
        for r in rows:
            if r.family != "fewer steps":
                ax.annotate(r.method, (r.measured_speedup, r.psnr_mean), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
        head = rows[0] if rows else None
        where = f" ({head.lowering}, {head.device})" if head else ""
        ax.set_title(f"{model}{where}", fontsize=9)
        ax.set_xlabel("measured speedup vs uncached (×)")
        ax.set_ylabel("PSNR vs uncached, mean (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path, dpi=130)


def decision_scores(trace: dict) -> list[list[float | None]]:
    """Per context, what was compared with the threshold at each call: the schedule's own score of the
    signals since the last full call (rescaled, summed when the rule accumulates). Rules that measure after
    a call (AdaCache's distance, SpeCa's error) give their raw signal."""
    if "accumulate" not in trace:
        return [list(ctx["signals"] or [None] * len(ctx["kinds"])) for ctx in trace["contexts"].values()]
    rule = SignalSchedule(threshold=trace["threshold"], accumulate=trace["accumulate"],
                          rescale=tuple(trace["rescale"]))
    out = []
    for ctx in trace["contexts"].values():
        scores, since = [], []
        for kind, signal in zip(ctx["kinds"], ctx["signals"] or [None] * len(ctx["kinds"])):
            if signal is not None:
                since.append(signal)
            scores.append(rule.score(since) if signal is not None else None)
            if kind == "full":
                since = []
        out.append(scores)
    return out


def plot_signals(result: BenchResult, path: Path) -> bool:
    """One panel per signal-driven row: the score compared with the threshold at every step, full steps filled,
    cached steps hollow. False (nothing written) when no row has a trace."""
    rows = [r for r in result.rows if r.trace]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(rows))
    fig, axes = plt.subplots(math.ceil(len(rows) / cols), cols, figsize=(4.2 * cols, 3.0 * math.ceil(len(rows) / cols)),
                             squeeze=False)
    for ax in axes.flat[len(rows):]:
        ax.set_visible(False)
    for ax, row in zip(axes.flat, rows):
        for (name, ctx), scores in zip(row.trace["contexts"].items(), decision_scores(row.trace)):
            steps = [i for i, v in enumerate(scores) if v is not None]
            full = [i for i in steps if ctx["kinds"][i] == "full"]
            cached = [i for i in steps if ctx["kinds"][i] != "full"]
            line = ax.plot(steps, [scores[i] for i in steps], lw=0.8, label=name)[0]
            ax.scatter(full, [scores[i] for i in full], color=line.get_color(), s=12, zorder=3)
            ax.scatter(cached, [scores[i] for i in cached], facecolors="none", edgecolors=line.get_color(), s=12)
        ax.axhline(row.trace["threshold"], color="crimson", lw=0.8, ls="--", label="threshold")
        ax.set_title(f"{row.model}: {row.method} ({row.computations:.1f} computed)", fontsize=8)
        ax.set_xlabel("step (filled: computed, hollow: cached)", fontsize=7)
        ax.set_ylabel("compared with the threshold", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    save_figure(fig, path, dpi=110)
    return True


def save_figure(fig, path: Path, dpi: int) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def write_results_json(results: Any, path: Path) -> None:
    """A results dataclass (how it was made in ``meta``, its header fields, ``rows`` of dataclasses) as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(results), indent=1) + "\n")


def read_results_json(path: Path, results_type: type, row_type: type) -> Any:
    """What ``write_results_json`` wrote, back as ``results_type`` with ``row_type`` rows."""
    data = json.loads(Path(path).read_text())
    rows = [row_type(**r) for r in data.pop("rows")]
    return results_type(**data, rows=rows)
