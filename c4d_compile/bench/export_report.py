"""The export check's committed results and the table docs/export.md shows from them.

``examples/export_check.py`` exports each bundled config and runs ``onnx_export.compare.check_export`` on it (the
exported program against the torch backend along the sampling trajectory, and its onnxruntime speed); it writes
one ``ExportRow`` per config with the run's ``run_meta``, and ``c4d publish`` renders the table from that file
(``export_table``, the ``export-cpu`` block), so no figure of the table is typed by hand. This module reads and
renders only: it does not import ``onnx_export``, so publishing needs no ONNX runtime.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..onnx_export.compare import ExportCheck
    from ..onnx_export.exporter import ExportResult


@dataclass(frozen=True)
class ExportRow:
    model: str  # a bundled config
    policy: str
    steps: int
    full_steps: int  # steps of the program that run the full variant
    export_seconds: float
    onnx_bytes: int  # the variant files, weights not counted
    weights_bytes: int  # the shared weights.bin
    moved_bytes: int  # what the variant files would hold without the shared file
    max_error: float  # |exported - torch| of the model output, the largest at any step of the trajectory
    final_error: float  # |exported - torch| of the final latent, the largest element
    seconds_uncached: float  # one generation on onnxruntime, the full variant at every step, median
    seconds_cached: float  # one cached generation on onnxruntime, median
    calls: dict[str, int] = field(default_factory=dict)  # variant kind -> calls in one cached generation
    rewrites: tuple[str, ...] = ()  # the exporter-gap rewrites the export applied

    @property
    def speedup(self) -> float:
        return self.seconds_uncached / self.seconds_cached


@dataclass(frozen=True)
class ExportResults:
    meta: dict  # run_meta of the run, with the onnxruntime version
    rows: list[ExportRow]


def export_row(model: str, policy: str, result: ExportResult, check: ExportCheck) -> ExportRow:
    full = sum(step.variant.value == "full" for step in result.plan.program)
    return ExportRow(model, policy, check.steps, full, result.seconds, sum(result.onnx_bytes.values()),
                     result.weights_bytes, result.moved_bytes, check.max_error, check.final_error,
                     check.seconds_uncached, check.seconds_cached, dict(check.calls), tuple(result.rewrites))


def write_export_json(results: ExportResults, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"meta": results.meta, "rows": [asdict(r) for r in results.rows]}
    path.write_text(json.dumps(data, indent=2) + "\n")


def read_export_json(path: Path) -> ExportResults:
    data = json.loads(Path(path).read_text())
    rows = [ExportRow(**{**r, "rewrites": tuple(r["rewrites"])}) for r in data["rows"]]
    return ExportResults(data["meta"], rows)


def export_table(results: ExportResults) -> str:
    """Per config: the export, the agreement along the trajectory, the onnxruntime speed; then where it came from."""
    lines = ["| model | export s | ONNX files KiB | weights.bin MiB | moved MiB | max err (output) | "
             "final-latent err | uncached s / gen | cached s / gen | speedup | full steps | rewrites |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results.rows:
        lines.append(f"| {r.model} | {r.export_seconds:.1f} | {r.onnx_bytes / 1024:.0f} | "
                     f"{r.weights_bytes / 2**20:.2f} | {r.moved_bytes / 2**20:.2f} | {r.max_error:.1e} | "
                     f"{r.final_error:.1e} | "
                     f"{r.seconds_uncached:.3f} | {r.seconds_cached:.3f} | {r.speedup:.2f}× | "
                     f"{r.full_steps}/{r.steps} | {', '.join(r.rewrites) or '–'} |")
    meta = results.meta
    machine, versions = meta.get("machine", {}), meta.get("versions", {})
    commit = (meta.get("commit") or "unknown")[:12] + (" with uncommitted changes" if meta.get("uncommitted_changes")
                                                      else "")
    load = machine.get("load_average_at_start")
    lines += ["", f"Largest over the {len(results.rows)} configs: output {max(r.max_error for r in results.rows):.1e}, "
              f"final latent {max(r.final_error for r in results.rows):.1e}. Run: `{meta.get('command')}` at commit "
              f"{commit}, {meta.get('date')}; {machine.get('cpus')} CPUs, {machine.get('torch_threads')} torch threads"
              + ("" if load is None else f", load average {load:.1f} at the start"
                 + (" (other processes shared the cores: the differences hold, the seconds and speedups are not an "
                    "idle machine's)" if load >= 1 else ""))
              + f"; torch {versions.get('torch')}, onnxruntime {versions.get('onnxruntime')}."]
    return "\n".join(lines)
