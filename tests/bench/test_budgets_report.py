"""The equal-compute summary: auto against the best preset, the best peer and fewer steps at its compute."""

from c4d_compile.bench.budgets_report import budget_of, budget_summary, plot_budgets
from c4d_compile.bench.matrix import BenchResult, BenchRow


def _row(method, family, psnr, fewer_db, ideal, steps=50, **settings):
    return BenchRow(model="flux (trained)", method=method, family=family, settings=settings, lowering="eager",
                    compiled=True, device="cpu", steps=steps, computations=steps / ideal, seconds=1.0,
                    uncached_seconds=1.0, measured_speedup=ideal, ideal_speedup=ideal, ratio=1.0, psnr_mean=psnr,
                    psnr_worst=psnr - 5, ssim_mean=None, accuracy=None, frechet=None, cache_mib=None,
                    compile_seconds=None, fewer_steps_db=fewer_db)


def _result():
    return BenchResult(rows=[
        _row("uncached", "uncached", float("inf"), None, 1.0),
        _row("auto@10", "c4d", 53.0, 15.4, 5.0, chosen="output FoCa() step"),
        _row("auto fast@10", "c4d", 52.0, 14.4, 5.0),
        _row("taylorseer @10", "c4d", 47.0, 8.7, 4.7),
        _row("taylorseer-lite @10", "c4d", 50.2, 12.6, 5.0),
        _row("taylorseer-lite calibrated@10", "c4d", 51.0, 13.4, 5.0),
        _row("diffusers-taylorseer@10", "diffusers", 43.4, 5.2, 4.5),
        _row("uncached, 10 steps", "fewer steps", 37.6, None, 5.0, steps=10),
        _row("uncached, 11 steps", "fewer steps", 38.3, None, 50 / 11, steps=11),
    ])


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
