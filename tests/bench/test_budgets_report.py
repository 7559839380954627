"""The equal-compute summary: auto against the best preset, the best peer and fewer steps at its compute."""

from support.bench_rows import study_result as _result

from c4d_compile.bench.budgets_report import (
    budget_of,
    budget_summary,
    cost_table,
    headline_table,
    plot_budgets,
    preset_table,
)
from c4d_compile.bench.matrix import BenchResult


def test_rows_of_the_study_carry_their_budget():
    rows = _result().rows
    assert [budget_of(r) for r in rows] == [None, 10, 10, 10, 10, 10, 10, None, None]


def test_the_summary_sets_auto_beside_the_best_of_each_kind_at_the_same_compute():
    (line,) = budget_summary(_result()).splitlines()[2:]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:3] == ["flux (trained)", "10", "10 steps: 37.6 / 32.6"]  # ceil(50 / 5.0) = 10
    assert cells[3] == "53.0 / 48.0 (+15.4)" and cells[4] == "52.0 / 47.0 (+14.4)"
    assert cells[5].startswith("`taylorseer-lite @10`")  # the best default-schedule preset
    assert cells[6].startswith("`taylorseer-lite calibrated@10`")  # the best c4d row that is not auto
    assert cells[7].startswith("`diffusers-taylorseer@10`") and cells[8] == "output FoCa() step"


def test_the_plot_is_written_only_for_a_study(tmp_path):
    assert plot_budgets(_result(), tmp_path / "b.png") and (tmp_path / "b.png").stat().st_size > 0
    plain = BenchResult(rows=[r for r in _result().rows if budget_of(r) is None])
    assert not plot_budgets(plain, tmp_path / "none.png") and not (tmp_path / "none.png").exists()


def test_the_headline_sets_auto_beside_fewer_steps_the_best_preset_and_the_best_peer():
    (line,) = headline_table(_result()).splitlines()[2:]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells == ["flux (trained)", "10", "37.6 (10 steps)", "**53.0** (+15.4)", "`taylorseer-lite` 50.2 (+12.6)",
                     "`diffusers-taylorseer` 43.4 (+5.2)"]


def test_the_preset_table_gives_every_row_its_gain_default_paper_calibrated():
    lines = preset_table(_result()).splitlines()
    assert lines[0].split(" | ")[4:] == ["`taylorseer`", "`taylorseer-lite`", "diffusers-taylorseer |"]
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells == ["flux (trained)", "10", "37.6 dB", "+15.4 / +14.4", "+8.7 / – / –", "+12.6 / – / +13.4", "+5.2"]


def test_the_cost_table_has_one_line_per_calibrated_auto_row():
    lines = cost_table(_result()).splitlines()
    assert len(lines) == 3  # `auto fast@10` of the fixture carries no calibration record: no line
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells == ["flux (trained)", "10", "default", "output FoCa() step", "54.2 / 53.0", "17.2", "20"]
