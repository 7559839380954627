"""GPU figures: a FLUX.1-dev-sized transformer (random weights, bf16), uncached against the main presets.

FluxTransformer2DModel with FLUX.1-dev's configuration (19 double + 38 single blocks, 24 heads x 128 = hidden
3072, guidance embedding), 4096 image tokens (a 1024 x 1024 image) + 512 text tokens, batch 1, compiled with
inductor; a flow-matching Euler loop. Per preset: seconds per generation (medians of runs alternated with the
uncached compiled model), measured and ideal speedup, compile time (the first generation minus a steady one),
the cache's bytes and the CUDA peak of a cached and an uncached generation. One JSON line per preset is
appended to ``--out`` as soon as it is measured, so a run cut short keeps what it measured; ``--budget-s``
starts no preset after that many seconds.

    python examples/bench_flux_gpu.py --out bench-out/flux_gpu.jsonl [--presets taylorseer,taylorseer-lite]
    python examples/bench_flux_gpu.py --size tiny --device cpu --lowering eager   # the same path, in seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from c4d_compile import c4d_backend
from c4d_compile.bench.speed import euler, psnr, timed

# FLUX.1-dev's transformer config (diffusers FluxTransformer2DModel), and a tiny one of the same kind
SIZES = {
    "dev": dict(config=dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                            guidance_embeds=True, axes_dims_rope=(16, 56, 56)), grid=64, text=512),
    "tiny": dict(config=dict(patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16,
                             num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=16,
                             guidance_embeds=True, axes_dims_rope=(4, 6, 6)), grid=4, text=8),
}


def build(size: str, device: torch.device, dtype: torch.dtype):
    """The model, initialised on the device in ``dtype``, and the inputs of one call (FluxPipeline's layout)."""
    from diffusers import FluxTransformer2DModel

    spec = SIZES[size]
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = FluxTransformer2DModel(**spec["config"]).eval()
    finally:
        torch.set_default_dtype(default)
    grid, text, cfg = spec["grid"], spec["text"], spec["config"]
    img_ids = torch.zeros(grid, grid, 3)
    img_ids[..., 1], img_ids[..., 2] = torch.arange(grid)[:, None], torch.arange(grid)[None, :]
    gen = torch.Generator().manual_seed(1)
    inputs = {
        "hidden_states": torch.randn(1, grid * grid, cfg["in_channels"], generator=gen),
        "encoder_hidden_states": torch.randn(1, text, cfg["joint_attention_dim"], generator=gen),
        "pooled_projections": torch.randn(1, cfg["pooled_projection_dim"], generator=gen),
        "guidance": torch.full((1,), 3.5),
        "img_ids": img_ids.reshape(-1, 3),
        "txt_ids": torch.zeros(text, 3),
        "return_dict": False,
    }
    inputs = {k: v.to(device, dtype if v.is_floating_point() and k != "guidance" else v.dtype)
              if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    return model, inputs


def generate(call, inputs: dict, steps: int) -> torch.Tensor:
    """Flow-matching Euler from sigma 1 to 0."""
    sigmas = torch.linspace(1.0, 0.0, steps + 1)[:-1]
    return euler(call, inputs, "hidden_states", "timestep", [s.reshape(1) for s in sigmas], sigmas.tolist())


def peak_mib(fn) -> tuple[object, float | None]:
    """``fn()`` and the CUDA memory peak it reached (None off CUDA)."""
    if not torch.cuda.is_available():
        return fn(), None
    torch.cuda.reset_peak_memory_stats()
    out = fn()
    torch.cuda.synchronize()
    return out, torch.cuda.max_memory_allocated() / 2**20


def measure(preset: str, model, run, uncached, reference: torch.Tensor, args: argparse.Namespace) -> dict:
    """One preset against the uncached compiled model, their generations alternated."""
    backend = c4d_backend(preset, lowering=args.lowering, num_steps=args.steps)
    cached = torch.compile(model, backend=backend)
    _, first = timed(lambda: run(cached))
    times: dict[str, list[float]] = {"uncached": [], "cached": []}
    for _ in range(args.repeats):  # alternated: drift hits both alike
        times["uncached"].append(timed(lambda: run(uncached))[1])
        backend.reset(stats=True)
        (result, seconds), peak = peak_mib(lambda: timed(lambda: run(cached)))
        times["cached"].append(seconds)
    stats = backend.stats()
    plain, fast = statistics.median(times["uncached"]), statistics.median(times["cached"])
    return {"preset": preset, "seconds": fast, "uncached_seconds": plain, "measured": plain / fast,
            "ideal": stats.ideal_speedup, "measured_over_ideal": plain / fast / stats.ideal_speedup,
            "full_steps": stats.full_steps, "compile_s": first - fast, "cache_mib": stats.cache_bytes / 2**20,
            "peak_mib": peak, "psnr_db_vs_uncached": psnr(result.float(), reference.float())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="dev")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    parser.add_argument("--lowering", choices=["inductor", "eager"], default="inductor")
    parser.add_argument("--presets", default="taylorseer,taylorseer-lite,foca")
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=float("inf"), help="start no preset after this")
    parser.add_argument("--out", default="bench-out/flux_gpu.jsonl")
    args = parser.parse_args()
    started = time.perf_counter()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    model, inputs = build(args.size, device, dtype)
    run = lambda call: generate(call, inputs, args.steps)  # noqa: E731
    uncached = torch.compile(model, backend="inductor" if args.lowering == "inductor" else "eager")
    _, first = timed(lambda: run(uncached))
    (reference, uncached_s), uncached_peak = peak_mib(lambda: timed(lambda: run(uncached)))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else args.device
    head = {"device": where, "size": args.size, "dtype": args.dtype, "lowering": args.lowering, "steps": args.steps,
            "params_b": sum(p.numel() for p in model.parameters()) / 1e9,
            "tokens": inputs["hidden_states"].shape[1] + inputs["encoder_hidden_states"].shape[1]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [{**head, "preset": "uncached", "seconds": uncached_s, "compile_s": first - uncached_s,
              "peak_mib": uncached_peak}]
    with out.open("a") as f:  # what is measured stays, even if the run is cut short
        f.write(json.dumps(lines[0]) + "\n")
    print(json.dumps(lines[0]), flush=True)
    for preset in [p for p in args.presets.split(",") if p]:
        if time.perf_counter() - started > args.budget_s:
            break
        lines.append({**head, **measure(preset, model, run, uncached, reference, args)})
        with out.open("a") as f:
            f.write(json.dumps(lines[-1]) + "\n")
        print(json.dumps(lines[-1]), flush=True)


if __name__ == "__main__":
    main()
