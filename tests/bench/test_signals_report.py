"""The adaptive-presets tables: each cell is its row's figure, rows and models as the results hold them."""

from __future__ import annotations

from pathlib import Path

from c4d_compile.bench.report import read_json
from c4d_compile.bench.signals_report import SELECTED, selected_signals, signal_speed

ROOT = Path(__file__).resolve().parents[2]


def test_the_selected_rows_show_each_rows_own_compute_fidelity_and_gain():
    result = read_json(ROOT / "docs/results/signals-cpu/bench.json")
    table = selected_signals(result).splitlines()
    assert table[0].count("vs fewer steps") == 3  # the three trained models, none of the random ones
    rows = {r.method: r for r in result.rows if r.model == "flux (trained)"}
    body = [line for line in table[2:] if line.startswith("| `")]
    assert len(body) == len([m for m in SELECTED if m in rows]) and "c4d bench" in table[-1]  # how it was made
    for line in body:
        method = line.split("`")[1]
        assert method in SELECTED
        row = rows[method]
        flux = line.split(" | ")[4:7]  # the second model's three cells
        assert flux == [f"{row.computations:.1f}", f"{row.psnr_mean:.1f} / {row.psnr_worst:.1f}",
                        f"{row.fewer_steps_db:+.1f}"]


def test_the_speed_table_leaves_out_the_uncached_reference_only():
    result = read_json(ROOT / "docs/results/adaptive-flux-bench/bench.json")
    table = signal_speed(result).splitlines()
    lines = [line for line in table[2:] if line.startswith("| `")]
    assert len(lines) == sum(r.family != "uncached" for r in result.rows)
    assert "c4d bench" in table[-1]  # the command that made it
    assert any(line.startswith("| `uncached, 6 steps`") for line in lines)  # fewer steps: the baseline to beat
