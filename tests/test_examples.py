"""Example scripts run their whole path at a tiny size on the CPU: the GPU benchmark (the device run is then one
call), and the export check that writes docs/export.md's results."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str):
    """``examples/<name>.py`` loaded as a module, so a test calls its ``main`` or its functions in-process."""
    loaded = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    script = importlib.util.module_from_spec(loaded)
    sys.modules[name] = script  # where a dataclass of the script looks its module up
    loaded.loader.exec_module(script)
    return script


def test_the_gpu_benchmark_script_runs_at_a_tiny_size_on_the_cpu(tmp_path):
    out = tmp_path / "flux.jsonl"
    cmd = [sys.executable, str(ROOT / "examples" / "bench_flux_gpu.py"), "--size", "tiny", "--device", "cpu",
           "--dtype", "float32", "--lowering", "eager", "--steps", "4", "--repeats", "1",
           "--presets", "taylorseer-lite", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    uncached, cached = (json.loads(line) for line in out.read_text().splitlines())
    assert uncached["preset"] == "uncached" and cached["preset"] == "taylorseer-lite"
    assert cached["full_steps"] < 4 and cached["ideal"] > 1 and cached["measured"] > 0
    assert cached["tokens"] == 24 and cached["device"] == "cpu"


def test_the_export_check_script_writes_results_the_export_table_renders(tmp_path):
    """examples/export_check.py (docs/export.md's figures) at 4 steps of tiny DiT: raw JSON with how it was run,
    read back and rendered by the publish block."""
    from c4d_compile.bench.export_report import export_table, read_export_json

    script = _example("export_check")
    out = tmp_path / "export.json"
    assert script.main(["--models", "dit", "--steps", "4", "--repeats", "1", "--out", str(out)]) == 0
    results = read_export_json(out)
    assert results.meta["command"].startswith("python examples/export_check.py --models dit --steps 4")
    assert {"commit", "date", "machine", "versions"} <= set(results.meta) and "onnxruntime" in results.meta["versions"]
    (row,) = results.rows
    assert row.model == "dit" and row.steps == 4 and row.calls["full"] == row.full_steps < 4
    assert row.max_error < 1e-4 and row.final_error < 1e-4 and row.weights_bytes > 0
    table = export_table(results)
    assert f"| dit | {row.export_seconds:.1f} |" in table and f"{row.final_error:.1e}" in table


def test_the_pipelines_check_script_writes_the_rows_of_the_readme_table(tmp_path):
    """examples/pipelines_check.py (the README's pipelines table) on one pipeline: the row's checks pass."""
    from c4d_compile.bench.pipelines_report import pipelines_table, read_pipelines_json

    script = _example("pipelines_check")
    out = tmp_path / "pipelines.json"
    assert script.main(["--pipelines", "flux-true-cfg", "--steps", "6", "--out", str(out)]) == 0
    results = read_pipelines_json(out)
    assert results.meta["command"].startswith("python examples/pipelines_check.py --pipelines flux-true-cfg --steps 6")
    (row,) = results.rows
    assert row.exact and row.independent and not row.warnings and row.graphs == row.cached_graphs == 1
    assert row.contexts == {"cond": (2, 4), "uncond": (2, 4)}
    assert "| flux-true-cfg | separate | 1 | yes | cond 2/4, uncond 2/4 | yes |" in pipelines_table(results)


def test_the_compatibility_check_writes_each_marked_tests_outcome_as_a_cell(tmp_path):
    """examples/compatibility_check.py (the README's compatibility table) on one cheap cell, run as a user runs it."""
    out = tmp_path / "compatibility.json"
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "compatibility_check.py"), "--select",
                           "group_offloading and fbcache", "--workers", "0", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    raw = json.loads(out.read_text())
    assert [(c["stack"], c["feature"], c["case"], c["outcome"], c["refused"]) for c in raw["cells"]] == [
        ("group-offload", "signal", "fbcache", "passed", "ConfigError")]
    assert raw["labels"]["lora"] == "LoRA (PEFT adapter)" and raw["meta"]["command"].endswith("--out " + str(out))


def test_the_per_call_timings_script_files_every_call_under_the_variant_it_ran(tmp_path):
    """examples/per_call_timings.py (the README's per-call table), eager, a short run: every call is timed once."""
    from c4d_compile.bench.per_call_report import per_call_table, read_per_call_json

    script = _example("per_call_timings")
    out = tmp_path / "per_call.json"
    assert script.main(["--lowerings", "eager", "--steps", "10", "--generations", "2", "--out", str(out)]) == 0
    results = read_per_call_json(out)
    rows = {row.kind: row for row in results.rows}
    assert sorted(rows) == ["cached", "full", "overhead-cached", "overhead-full", "plain"]
    assert results.steps == 10 and results.generations == 2
    assert rows["full"].calls + rows["cached"].calls == rows["plain"].calls == 2 * 10
    assert (rows["overhead-full"].calls, rows["overhead-cached"].calls) == (rows["full"].calls, rows["cached"].calls)
    assert rows["overhead-cached"].median_us < rows["cached"].median_us  # the variant's own time is taken out
    assert 0 < rows["full"].calls < rows["cached"].calls  # the paper's schedule: warm-up 3, then 1 in 5
    assert all(0 < row.p10_us <= row.median_us <= row.p90_us for row in rows.values())
    assert f"| eager | cached step | **{rows['cached'].median_us:.0f}** |" in per_call_table(results)


def test_the_freqca_study_splits_along_the_tokens_only():
    """examples/freqca_band_split.py's low band: constant along the tokens is all low, the highest frequency is all
    high, and the other dims are left alone."""
    script = _example("freqca_band_split")
    tokens = 40
    alternating = torch.tensor([(-1.0) ** i for i in range(tokens)])
    x = torch.stack([torch.full((tokens,), 3.0), alternating])  # (2 channels, tokens): token dim 1
    low = script.low_band(x.unsqueeze(0), (2,))[0]
    assert torch.allclose(low[0], x[0]) and low[1].abs().max() < 1e-6
    grid = torch.randn(2, 3, 4, 5)  # (B, C, H, W) with the tokens on H x W
    swapped = script.low_band(grid.permute(0, 2, 3, 1), (1, 2)).permute(0, 3, 1, 2)
    assert torch.allclose(script.low_band(grid, (2, 3)), swapped, atol=1e-6)


def test_the_serving_loop_serves_every_request_to_its_last_step_both_ways(tmp_path):
    """examples/serve.py (the README's serving table) on four short requests: both servers finish the same stream,
    the cached one with fewer FLOPs than the plain one, each request's state freed as it ends."""
    from c4d_compile.bench.serve_report import read_serve_json, serve_table

    script = _example("serve")
    out = tmp_path / "serve.json"
    assert script.main(["--requests", "4", "--steps", "5", "8", "--max-batch", "3", "--out", str(out)]) == 0
    results = read_serve_json(out)
    plain, cached = results.rows
    assert (plain.server, cached.server) == ("plain", "taylorseer") and plain.requests == cached.requests == 4
    assert plain.calls == cached.calls  # one scheduler, one stream: the same batches
    assert plain.ideal_speedup == 1.0 < cached.ideal_speedup and cached.latency_p50_s <= cached.latency_p95_s
    requests = script.draw_requests(4, (5, 8), 4, 0)
    assert "images / s" in serve_table(results) and results.steps == (5, 8) and all(5 <= r.steps <= 8 for r in requests)


def test_the_load_test_checks_every_request_and_reports_state_and_memory(tmp_path):
    """examples/serve_load.py (the README's load table) on a dozen requests: it passes only when every completed
    request equals its solo run and no state is left; its table says so."""
    from c4d_compile.bench.serve_report import load_table, read_load_json

    script = _example("serve_load")
    out = tmp_path / "load.json"
    assert script.main(["--requests", "12", "--rounds", "1", "--steps", "3", "4", "--malformed", "0.2",
                        "--out", str(out)]) == 0
    results = read_load_json(out)
    assert results.answered == 12 and results.mismatched == 0 and results.completed >= 1
    assert results.live_state_bytes == 0 and results.pending == 0 and len(results.rss_rounds_mib) == 1
    assert "completed = solo run" in load_table(results)


def test_the_objective_searches_are_exact_against_brute_force():
    """examples/final_error_objectives.py's two dynamic programmes over per-segment costs — the summed cost
    (DPCache's path error) and the worst-first sorted costs (LeMiCa's lexicographic minimax) — give what
    enumerating every schedule gives, on random costs of a 9-step grid."""
    import itertools
    import random

    script = _example("final_error_objectives")
    steps, budget, draw = 9, 4, random.Random(2)
    costs = {}
    for i in range(steps):
        for p in [None] if i == 0 else range(i):
            for j in range(i + 2, steps + 1):
                costs[(p, i, j)] = draw.random()

    def per_segment(schedule):
        return [costs[seg] for seg in script.segments(schedule, steps)]

    every = [(0, *rest) for rest in itertools.combinations(range(1, steps), budget - 1)]
    assert per_segment(script.best_additive(costs, steps, budget, steps)) == per_segment(
        min(every, key=lambda s: sum(per_segment(s))))
    minimax = script.best_minimax(costs, steps, budget, steps)
    assert sorted(per_segment(minimax), reverse=True) == min(sorted(per_segment(s), reverse=True) for s in every)
    assert minimax != script.best_additive(costs, steps, budget, steps)  # the two objectives disagree here
