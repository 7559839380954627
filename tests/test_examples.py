"""The GPU benchmark script runs its whole path at a tiny size on the CPU (the device run is then one call)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
