"""The cached-vs-uncached speed table: one line per cached row, the baselines left out."""

from support.bench_rows import study_result

from c4d_compile.bench.speed_report import speed_table


def test_one_line_per_cached_row_with_its_times_and_speedups():
    lines = speed_table(study_result()).splitlines()
    cached = [line for line in lines[2:] if line.startswith("| flux")]
    assert len(cached) == 6  # uncached and fewer-steps rows are not methods
    auto = next(line for line in cached if "`auto@10`" in line)
    assert "(10 of 50 steps)" in auto and "**5.00x**" in auto and "53.0 dB" in auto and "+15.4 dB" in auto
