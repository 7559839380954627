"""The README's pipelines table, from ``examples/pipelines_check.py``'s JSON: per real diffusers pipeline, the
graphs Dynamo handed the backend, whether ``interval=1`` equals the uncompiled pipeline, the full / cached steps
of each guidance context under the default preset, and whether a second call is independent of the first."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class PipelineRow:
    pipeline: str
    guidance: str  # none, batched, separate (support.pipelines.GUIDANCE_KINDS)
    steps: int  # of the default-preset generation
    graphs: int  # Dynamo graphs over the run (a split model's fragments included)
    cached_graphs: int  # of which the backend runs cached
    opaque_modules: dict[str, int]  # module class -> instances called opaquely to repair a split stack
    exact: bool  # interval=1 equals the uncompiled pipeline bit for bit
    contexts: dict[str, tuple[int, int]]  # context -> (full, cached) steps in the default-preset generation
    independent: bool  # a second call with another seed and step count equals it after backend.reset()
    warnings: list[str] = field(default_factory=list)  # C4DWarnings of the default-preset generation


@dataclass
class PipelineResults:
    meta: dict
    rows: list[PipelineRow] = field(default_factory=list)


def write_pipelines_json(results: PipelineResults, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": results.meta, "rows": [asdict(r) for r in results.rows]}, indent=1) + "\n")


def read_pipelines_json(path: Path) -> PipelineResults:
    data = json.loads(Path(path).read_text())
    rows = [PipelineRow(**{**r, "contexts": {k: tuple(v) for k, v in r["contexts"].items()}}) for r in data["rows"]]
    return PipelineResults(data["meta"], rows)


def _graphs(row: PipelineRow) -> str:
    if row.opaque_modules:  # the split forwards' fragments, then the repaired model's graph(s)
        return f"{row.graphs - row.cached_graphs} → {row.cached_graphs}"
    return str(row.graphs)


def _contexts(row: PipelineRow) -> str:
    text = ", ".join(f"{name} {full}/{cached}" for name, (full, cached) in row.contexts.items())
    ran = max((full + cached for full, cached in row.contexts.values()), default=row.steps)
    if row.opaque_modules and ran < row.steps:
        text += f" (steps 0–{row.steps - ran - 1} run split)"
    return text


def pipelines_table(results: PipelineResults) -> str:
    steps = {r.steps for r in results.rows}
    lines = [f"| pipeline | guidance | graphs | interval=1 exact | full / cached steps per context "
             f"({', '.join(map(str, sorted(steps)))} steps) | second call OK |", "|---|---|---|---|---|---|"]
    for r in sorted(results.rows, key=lambda r: r.pipeline):
        warned = " (warned)" if r.warnings else ""
        lines.append(f"| {r.pipeline} | {r.guidance} | {_graphs(r)} | {'yes' if r.exact else '**no**'} | "
                     f"{_contexts(r)}{warned} | {'yes' if r.independent else '**no**'} |")
    return "\n".join(lines)
