"""The context-parallel runs file: a run replaces an earlier one of the same world, mode and policy; the table
shows each run's ranks and its single process."""

from __future__ import annotations

from c4d_compile.bench.context_parallel_report import context_parallel_table, keep_run, read_runs


def _run(world: int, mode: str, policy: str, uncached: float) -> dict:
    result = {"world": world, "seconds": {"uncached": uncached, "cached": 1.0}, "measured": uncached, "ideal": 4.6,
              "full_steps": 6, "cache_mib": 20.0 / world, "first_generation_s": {"uncached": 3.0, "cached": 4.0}}
    return {"meta": {"command": "python examples/context_parallel.py", "commit": "abcdef0", "date": "2026-12-06"},
            "mode": mode, "policy": policy, "steps": 28, "repeats": 3, "lowering": "eager",
            "ranks": result, "single": {**result, "world": 1, "cache_mib": 20.0}}


def test_a_run_replaces_the_earlier_run_of_its_world_mode_and_policy(tmp_path):
    path = tmp_path / "runs.json"
    keep_run(path, _run(2, "ulysses", "taylorseer", 5.0))
    keep_run(path, _run(4, "ulysses", "taylorseer", 6.0))
    keep_run(path, _run(2, "ulysses", "taylorseer", 7.0))  # measured again
    runs = read_runs(path)
    assert [(r["ranks"]["world"], r["ranks"]["seconds"]["uncached"]) for r in runs] == [(4, 6.0), (2, 7.0)]
    table = context_parallel_table(runs)
    assert "| `taylorseer` | 2 ranks, ulysses | 7.00 | 1.00 | 7.00× | 4.60× | 10.0 MiB | 4.0 s |" in table
    assert table.count("1 process (same run)") == 2 and "at abcdef0, 2026-12-06" in table
