"""The speed of a preset's compiled variants on the CPU Flux benchmark config (``examples/bench_flux_cpu.py``):
seconds per generation on both sides, measured against ideal speedup, fidelity and compile time, in one table."""

from __future__ import annotations

import json
from pathlib import Path

from .report import run_line


def read_flux_cpu_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def flux_cpu_table(figures: dict) -> str:
    f = figures
    rows = [
        ("uncached, compiled (s / generation)", f"{f['uncached_compiled_s']:.2f}"),
        (f"`{f['policy']}` (s / generation)", f"{f['cached_compiled_s']:.2f} ({f['full_steps']} of {f['steps']} "
                                            "steps computed)"),
        ("measured / ideal speedup", f"**{f['measured_speedup']:.2f}× / {f['ideal_speedup']:.2f}×** (ratio "
                                     f"{f['measured_over_ideal']:.2f})"),
        ("final-latent PSNR", f"{f['psnr_final_latent_db']:.1f} dB"),
        ("compile time, c4d / plain inductor", f"{f['compile_s_c4d']:.1f} s / {f['compile_s_plain']:.1f} s "
                                               f"({f['compile_ratio']:.2f}×; each in a fresh process, empty cache)"),
    ]
    lines = ["| flux-bench, inductor on both sides | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    lines += ["", f"{f['steps']} steps, {f['threads']} threads, medians of {f['repeats']} alternated runs; "
                  f"{run_line(f['meta'])}."]
    return "\n".join(lines) + "\n"
