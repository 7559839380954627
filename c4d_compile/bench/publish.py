"""``c4d publish``: the tables of README.md and docs/ regenerated from the committed results.

A published table lives between two markers naming what produced it::

    <!-- results: budgets-headline -->
    | ... generated ... |
    <!-- /results -->

``BLOCKS`` maps each name to the committed results file (written by a ``c4d bench`` run, or by
``examples/export_check.py``, with its command, commit, machine and date), the function that reads it (a bench
result unless said otherwise) and the function that renders it, so a table is never typed by hand and a test
(``tests/bench/test_publish.py``) fails when the committed text and the committed results disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidValueError
from .budgets_report import budget_summary, cost_table, headline_table, preset_table
from .compatibility_report import compatibility_table, read_compatibility_json
from .context_parallel_report import context_parallel_table, read_runs
from .export_report import export_table, read_export_json
from .flux_cpu_report import flux_cpu_table, read_flux_cpu_json
from .matrix_report import fidelity_table, random_matrix, trained_matrix
from .memory_report import memory_table, read_memory_json
from .objectives_report import load_objectives, objectives_table
from .per_call_report import per_call_table, read_per_call_json
from .pipelines_report import pipelines_table, read_pipelines_json
from .report import markdown, read_json
from .serve_report import load_table, read_load_json, read_serve_json, serve_table
from .signals_report import selected_signals, signal_speed
from .speed_report import speed_table


@dataclass(frozen=True)
class Block:
    source: str  # a results file, relative to the repository root
    render: Callable[[Any], str]  # what ``load`` returns -> the block's text
    load: Callable[[Path], Any] = read_json  # the results file -> what ``render`` takes (default: a BenchResult)


BLOCKS: dict[str, Block] = {
    "adaptive-more": Block("docs/results/adaptive-more-cpu/bench.json", fidelity_table),
    "budgets-headline": Block("docs/results/budgets-cpu/bench.json", headline_table),
    "budgets-summary": Block("docs/results/budgets-cpu/bench.json", budget_summary),
    "budgets-presets": Block("docs/results/budgets-cpu/bench.json", preset_table),
    "auto-cost": Block("docs/results/budgets-cpu/bench.json", cost_table),
    "compatibility": Block("docs/results/compatibility-cpu/compatibility.json", compatibility_table,
                           read_compatibility_json),
    "context-parallel": Block("docs/results/context-parallel-cpu/runs.json", context_parallel_table, read_runs),
    "export-cpu": Block("docs/results/export-cpu/export.json", export_table, read_export_json),
    "fixed-flux-bench": Block("docs/results/fixed-flux-bench/bench.json", signal_speed),
    "flux-cpu": Block("docs/results/flux-cpu/flux_cpu.json", flux_cpu_table, read_flux_cpu_json),
    "matrix-trained": Block("docs/results/bench-cpu/bench.json", trained_matrix),
    "matrix-random": Block("docs/results/bench-cpu/bench.json", random_matrix),
    "matrix-full": Block("docs/results/bench-cpu/bench.json", markdown),
    "memory": Block("docs/results/memory-cpu/memory.json", memory_table, read_memory_json),
    "narrow-flux-bench": Block("docs/results/narrow-flux-bench/bench.json", signal_speed),
    "objectives": Block("docs/results/objectives.json", objectives_table, load_objectives),
    "per-call": Block("docs/results/per-call-cpu/per_call.json", per_call_table, read_per_call_json),
    "pipelines": Block("docs/results/pipelines-cpu/pipelines.json", pipelines_table, read_pipelines_json),
    "quantized-cpu": Block("docs/results/quantized-cpu/speed.json", speed_table),
    "seacache": Block("docs/results/seacache-cpu/bench.json", fidelity_table),
    "seacache-eps": Block("docs/results/seacache-eps-cpu/bench.json", fidelity_table),
    "serve": Block("docs/results/serve-cpu/serve.json", serve_table, read_serve_json),
    "serve-load": Block("docs/results/serve-cpu/load.json", load_table, read_load_json),
    "serve-flux-bench": Block("docs/results/serve-cpu/serve-flux-bench.json", serve_table, read_serve_json),
    "signals-flux-bench": Block("docs/results/adaptive-flux-bench/bench.json", signal_speed),
    "signals-selected": Block("docs/results/signals-cpu/bench.json", selected_signals),
    "signals-full": Block("docs/results/signals-cpu/bench.json", markdown),
    "tokens": Block("docs/results/tokens-cpu/bench.json", fidelity_table),
}

DOCUMENTS = ("README.md", "docs/*.md")
_MARKED = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def render(name: str, root: Path) -> str:
    block = BLOCKS.get(name)
    if block is None:
        raise InvalidValueError("results block", name, "one of " + ", ".join(sorted(BLOCKS)))
    return block.render(block.load(root / block.source)).rstrip("\n") + "\n"


def publish(root: Path, check: bool = False) -> list[Path]:
    """Rewrite every marked block of the documents under ``root``; returns the files that changed (with
    ``check``, the files that would change, nothing written)."""
    changed = []
    rendered: dict[str, str] = {}
    for pattern in DOCUMENTS:
        for path in sorted(root.glob(pattern)):
            text = path.read_text()

            def fill(match: re.Match) -> str:
                name = match.group("name")
                if name not in rendered:
                    rendered[name] = render(name, root)
                return match.group(1) + rendered[name] + match.group(4)

            new = _MARKED.sub(fill, text)
            if new != text:
                changed.append(path)
                if not check:
                    path.write_text(new)
    return changed
