"""The README's compatibility table: runs every test marked ``compat`` (one per cell case, see
``tests/stacks/test_compatibility.py``) and writes their outcomes, with how the run was made::

    python examples/compatibility_check.py --out docs/results/compatibility-cpu/compatibility.json
    c4d publish                                     # renders the README's table from that file

A cell of the table is what its tests did: passed, passed by asserting a typed refusal, failed or skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the stacks the tests run

from support.stacks import LABELS  # noqa: E402

from c4d_compile.bench.compatibility_report import (  # noqa: E402
    FEATURES,
    Cell,
    CompatibilityResults,
    write_compatibility_json,
)
from c4d_compile.bench.report import run_meta  # noqa: E402


class CellCollector:
    """A pytest plugin: the outcome of each marked test, from its reports (on the controller under xdist)."""

    def __init__(self):
        self.cells: dict[str, Cell] = {}

    def pytest_runtest_logreport(self, report):
        marker = dict(report.user_properties).get("compat")
        if marker is None or (report.when != "call" and report.passed):
            return
        if marker["feature"] not in FEATURES:
            raise ValueError(f"{report.nodeid}: compat feature {marker['feature']!r}; valid: {', '.join(FEATURES)}")
        if report.when == "teardown" and report.nodeid in self.cells and report.passed:
            return
        outcome = "failed" if report.failed else report.outcome
        self.cells[report.nodeid] = Cell(**marker, outcome=outcome, test=report.nodeid,
                                         seconds=round(report.duration, 1))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", default=None, help="only the cell tests whose ids match (pytest -k)")
    parser.add_argument("--workers", default="2", help="pytest-xdist workers (0: one process)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/compatibility-cpu/compatibility.json"))
    args = parser.parse_args(argv)
    collector = CellCollector()
    pytest_args = [str(ROOT / "tests"), "-m", "compat", "-q", "-n", args.workers, "-p", "no:cacheprovider",
                   "--rootdir", str(ROOT), *(["-k", args.select] if args.select else [])]
    code = pytest.main(pytest_args, plugins=[collector])
    if not collector.cells:
        print(f"no cell test ran (pytest exit code {int(code)})", file=sys.stderr)
        return 1
    cells = sorted(collector.cells.values(), key=lambda c: (list(LABELS).index(c.stack) if c.stack in LABELS else
                                                           len(LABELS), list(FEATURES).index(c.feature), c.test))
    results = CompatibilityResults(run_meta(argv, program="python examples/compatibility_check.py"), LABELS, cells)
    write_compatibility_json(results, args.out)
    return 0 if int(code) == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
