"""The README's compatibility table, from the outcomes of the tests marked ``compat``
(``examples/compatibility_check.py``).

Each marked test is one case of one cell: ``pytest.mark.compat(stack, feature, case, refused=None)``. A cell lists
its cases: ``✓ case`` when the test passed, ``refused (Error): case, ...`` when the tests passed by asserting
that typed refusal, ``✗ case`` when it failed, ``skipped case`` when it did not run. A cell no test covers says
"not tested": the table claims nothing a test did not show.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .report import run_line

# the columns, in order, and their headers
FEATURES = {
    "regions": "region kinds",
    "signal": "signal presets",
    "tokens": "token presets",
    "export": "ONNX export",
    "context-parallel": "context parallelism",
}
MARKS = {"passed": "✓", "failed": "✗", "skipped": "skipped"}  # a test's outcome -> how its case is shown


@dataclass(frozen=True)
class Cell:
    stack: str
    feature: str  # a key of FEATURES
    case: str
    outcome: str  # a key of MARKS
    test: str  # the test's node id
    refused: str | None = None  # the typed error the test asserts is raised, when it asserts a refusal
    seconds: float = 0.0


@dataclass
class CompatibilityResults:
    meta: dict
    labels: dict[str, str] = field(default_factory=dict)  # stack -> its row label
    cells: list[Cell] = field(default_factory=list)


def write_compatibility_json(results: CompatibilityResults, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = {"meta": results.meta, "labels": results.labels, "cells": [asdict(c) for c in results.cells]}
    path.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n")


def read_compatibility_json(path: Path) -> CompatibilityResults:
    data = json.loads(Path(path).read_text())
    return CompatibilityResults(data["meta"], data["labels"], [Cell(**c) for c in data["cells"]])


def _cases(cells: list[Cell]) -> str:
    """One cell's text: each case with its outcome; the cases refused with one error are listed after it."""
    parts: dict[str, list[str]] = {}
    for cell in cells:
        if cell.outcome == "passed" and cell.refused:
            parts.setdefault(f"refused ({cell.refused}):", []).append(cell.case)
        else:
            parts.setdefault(f"{MARKS[cell.outcome]} {cell.case}", [])
    return ", ".join(f"{head} {', '.join(dict.fromkeys(cases))}" if cases else head for head, cases in parts.items())


def compatibility_table(results: CompatibilityResults) -> str:
    by_cell: dict[tuple[str, str], list[Cell]] = {}
    for cell in results.cells:
        by_cell.setdefault((cell.stack, cell.feature), []).append(cell)
    stacks = list(dict.fromkeys([*results.labels, *(c.stack for c in results.cells)]))
    lines = ["| stack | " + " | ".join(FEATURES.values()) + " |", "|---" * (len(FEATURES) + 1) + "|"]
    for stack in stacks:
        row = []
        for feature in FEATURES:
            cases = by_cell.get((stack, feature), [])
            row.append(_cases(cases) if cases else "not tested")
        lines.append(f"| {results.labels.get(stack, stack)} | " + " | ".join(row) + " |")
    passed = sum(c.outcome == "passed" for c in results.cells)
    lines += ["", f"{passed} of {len(results.cells)} cell tests passed; {run_line(results.meta)}."]
    return "\n".join(lines) + "\n"
