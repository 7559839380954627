"""A small equal-compute study result, as ``c4d bench --budgets`` would write it, for report tests."""

from c4d_compile.bench.matrix import BenchResult, BenchRow


def _row(method, family, psnr, fewer_db, ideal, steps=50, **settings):
    return BenchRow(model="flux (trained)", method=method, family=family, settings=settings, lowering="eager",
                    compiled=True, device="cpu", steps=steps, computations=steps / ideal, seconds=1.0,
                    uncached_seconds=1.0, measured_speedup=ideal, ideal_speedup=ideal, ratio=1.0, psnr_mean=psnr,
                    psnr_worst=psnr - 5, ssim_mean=None, accuracy=None, frechet=None, cache_mib=None,
                    compile_seconds=None, fewer_steps_db=fewer_db)


def study_result() -> BenchResult:
    return BenchResult(rows=[
        _row("uncached", "uncached", float("inf"), None, 1.0),
        _row("auto@10", "c4d", 53.0, 15.4, 5.0, chosen="output FoCa() step", calibration_psnr=54.2,
             calibration_seconds=20.4, calibration_generations=40.5, calibration_flop_generations=17.25),
        _row("auto fast@10", "c4d", 52.0, 14.4, 5.0),
        _row("taylorseer @10", "c4d", 47.0, 8.7, 4.7),
        _row("taylorseer-lite @10", "c4d", 50.2, 12.6, 5.0),
        _row("taylorseer-lite calibrated@10", "c4d", 51.0, 13.4, 5.0),
        _row("diffusers-taylorseer@10", "diffusers", 43.4, 5.2, 4.5),
        _row("uncached, 10 steps", "fewer steps", 37.6, None, 5.0, steps=10),
        _row("uncached, 11 steps", "fewer steps", 38.3, None, 50 / 11, steps=11),
    ])
