"""The cache memory table (``examples/memory_table.py``): per preset, what its plan keeps per guidance context on
a model — the cached tensors, their history slots, the signal and token state — read from the plan before step
one, so the figures are exact (no run, no timing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .report import read_results_json, run_line, write_results_json


@dataclass(frozen=True)
class PresetMemory:
    preset: str
    region: str
    features: int  # cached tensors
    slots: int  # history slots of each
    bytes_by_kind: dict[str, int]  # per kind of state (branch, output, signal, token-refresh, clusters, ...)
    state_bytes: int  # per guidance context
    refused: str = ""  # why the preset does not plan on this model (then the counts are 0)


@dataclass
class MemoryResults:
    meta: dict
    model: str
    dtype: str
    num_steps: int
    rows: list[PresetMemory] = field(default_factory=list)


def write_memory_json(results: MemoryResults, path: Path) -> None:
    write_results_json(results, path)


def read_memory_json(path: Path) -> MemoryResults:
    return read_results_json(path, MemoryResults, PresetMemory)


_FEATURE_KINDS = ("output", "stack", "branch", "block")  # the forecast history; the rest is signal or token state


def memory_table(results: MemoryResults) -> str:
    lines = ["| preset | region | cached tensors × history slots | history | signal / token state | "
             "cache per context |", "|---|---|---|---|---|---|"]
    for row in sorted(results.rows, key=lambda r: (r.refused != "", r.state_bytes, r.preset)):
        if row.refused:
            why = row.refused.split(": ", 1)[-1].split(":")[0]  # the error's first clause: what it needs
            lines.append(f"| `{row.preset}` | – | – | – | – | not planned: {why} |")
            continue
        history = sum(b for kind, b in row.bytes_by_kind.items() if kind in _FEATURE_KINDS)
        extra = {kind: b for kind, b in row.bytes_by_kind.items() if kind not in _FEATURE_KINDS}
        extras = ", ".join(f"{kind} {_mib(b)}" for kind, b in sorted(extra.items())) or "–"
        lines.append(f"| `{row.preset}` | {row.region} | {row.features} × {row.slots} | {_mib(history)} | {extras} | "
                     f"**{_mib(row.state_bytes)}** |")
    lines += ["", f"Per guidance context on `{results.model}` ({results.dtype}, {results.num_steps} steps), every "
                  f"preset at its defaults, from `backend.plan` before step one; {run_line(results.meta)}."]
    return "\n".join(lines) + "\n"


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 / 100 else f"{n / 2**10:.1f} KiB"
