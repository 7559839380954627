"""``c4d`` command line: ``c4d inspect``, ``c4d policies``, ``c4d demo``, ``c4d bench``, ``c4d calibrate``,
``c4d export``, ``c4d publish``, ``c4d evaluate``."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from .errors import C4DError


def _inspect(args: argparse.Namespace) -> int:
    from .inspect_model import describe_variants, inspect_target

    results = inspect_target(args.model, args.policy)
    for i, (analysis, plan, rewrite) in enumerate(results):
        print(f"== graph {i + 1} of {len(results)} ==")
        print(analysis.report())
        if plan is not None:
            print(f"plan for {args.policy!r}:")
            print(plan.describe())
            print("variants:")
            print(describe_variants(rewrite))
    return 0


def _policies(args: argparse.Namespace) -> int:
    from .policies import get_policy, list_policies

    for name in list_policies():
        policy = get_policy(name)
        print(f"{name:<18} region={policy.region.value:<7} {policy.description}")
        print(f"{'':<18} options: {policy.options()}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    r = run_demo(args.model, args.policy, steps=args.steps, per_class=args.per_class, repeats=args.repeats,
                 lowering=args.lowering, out=args.out)
    print(f"{r['policy']} on the trained {r['model']} reference model, {r['steps']} steps "
          f"({r['full_steps']} computed): measured speedup {r['measured_speedup']:.2f}x "
          f"(ideal {r['ideal_speedup']:.2f}x, {args.lowering} lowering, CPU)")
    print(f"PSNR vs uncached: cached {r['psnr_cached_db']:.2f} dB, uncached with {r['baseline_steps']} steps "
          f"{r['psnr_fewer_steps_db']:.2f} dB; class accuracy of cached samples {100 * r['accuracy_cached']:.0f} %")
    print(f"picture: {r['picture']}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from .calibration import calibrate
    from .calibration.targets import load_target

    model, run = load_target(args.model, args.steps, args.seeds, args.per_class, args.shift)
    options = dict(args.set)
    if args.effort is not None:
        options["effort"] = args.effort
    result = calibrate(model, run, args.policy, budget=args.budget, out=args.out, **options)
    if hasattr(result, "results"):  # policy="auto": the candidates it measured
        cost = result.cost
        print(result.table())
        print(f"auto, budget {result.budget} of {result.num_steps} steps: {result.candidate.label}, full steps "
              f"{list(result.full_steps)}, final sample {result.psnr:.2f} dB against uncached; {cost.cached_runs} "
              f"cached + {cost.uncached_runs} uncached runs, {cost.seconds:.0f} s = {cost.generations:.1f} uncached "
              f"runs of time ({cost.flop_generations:.1f} of compute); wrote {result.path}")
    elif hasattr(result, "ratios"):
        print(f"{result.policy.name}: magnitude ratios over {result.num_steps} steps "
              f"{[round(r, 4) for r in result.ratios]}; wrote {result.path}")
    elif hasattr(result, "rescale"):
        print(f"{result.policy.name}: rescale polynomial {[float(f'{c:.4g}') for c in result.rescale]} fitted on "
              f"{result.pairs} steps; wrote {result.path}")
    else:
        print(f"{result.policy.name}, budget {result.budget} of {result.num_steps} steps: full steps "
              f"{list(result.full_steps)} (forecast error {result.error:.4g}); wrote {result.path}")
    (key, value), = result.overrides().items()
    print(f"use it: c4d_backend({result.policy.name!r}, {key}={value!r})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .errors import InvalidValueError
    from .inspect_model import load_target
    from .onnx_export import export
    from .onnx_export.compare import check_export

    model, inputs = load_target(args.model)
    result = export(model, inputs, args.policy, args.out, num_steps=args.steps, **dict(args.set))
    print(result.summary())
    if args.check:
        from .zoo.tiny_diffusers import TINY_MODELS

        spec = TINY_MODELS.get(args.model)
        if spec is None:
            raise InvalidValueError("--check", args.model, f"a bundled tiny config ({', '.join(sorted(TINY_MODELS))}), "
                                    "whose timesteps and latent input c4d knows")
        check = check_export(args.out, model, spec, inputs, args.steps, args.policy, **dict(args.set))
        print(check.summary())
    return 0


def _option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as a Python literal where it is one (6, 0.5, True), else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _bench(args: argparse.Namespace) -> int:
    import torch

    from .bench.budgets_report import budget_summary, plot_budgets
    from .bench.matrix import run_matrix
    from .bench.plans import BUDGETS, FULL, QUICK, SIGNALS
    from .bench.report import markdown, plot_pareto, plot_signals, run_meta, write_json

    base = QUICK if args.quick else SIGNALS if args.thresholds else BUDGETS if args.budgets else FULL
    plan = base.with_overrides(
        models=args.models and tuple(args.models), policies=args.policies and tuple(args.policies),
        peers=args.peers if args.peers is None else tuple(args.peers), repeats=args.repeats,
        per_class=args.per_class, lowering=args.lowering, steps=args.steps, overrides=tuple(args.set) or None,
        budgets=args.budgets and tuple(args.budgets), shifts=args.shifts and tuple(args.shifts),
        thresholds=args.thresholds and tuple(args.thresholds),
        auto=args.auto if args.auto is None else tuple(args.auto),
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = plan.methods()  # validates every name before anything runs
    out = Path(args.out)
    meta = run_meta(args.argv)

    def write(result) -> None:  # after every model: a long run keeps what it has measured
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.md").write_text(markdown(result) + "\n")
        write_json(result, out / "bench.json", meta)
        plot_pareto(result, out / "pareto.png")
        plot_signals(result, out / "signals.png")
        if plot_budgets(result, out / "budgets.png"):  # the equal-compute study
            (out / "budgets-summary.md").write_text(budget_summary(result) + "\n")

    result = run_matrix(list(plan.models), methods, on_model=write, shifts=plan.shifts, repeats=plan.repeats,
                        steps=plan.steps, lowering=plan.lowering, per_class=plan.per_class)
    print(markdown(result))
    signals = ", " + str(out / "signals.png") if any(r.trace for r in result.rows) else ""
    print(f"wrote {out / 'bench.md'}, {out / 'bench.json'}, {out / 'pareto.png'}{signals}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from .bench.publish import publish

    changed = publish(Path(args.root), check=args.check)
    for path in changed:
        print(f"{'out of date' if args.check else 'rewrote'}: {path}")
    if not changed:
        print("every generated table matches its results")
    return 1 if args.check and changed else 0


def _evaluate(args: argparse.Namespace) -> int:
    from .bench.evaluate import EvalConfig, evaluate
    from .bench.evaluate_report import markdown, write_all
    from .bench.evaluate_scorers import ScoreModels
    from .bench.evaluate_target import read_prompts

    config = EvalConfig(
        pipeline=args.pipeline, prompts=read_prompts(args.prompts, args.prompts_file), steps=args.steps,
        methods=tuple(args.methods), seeds=tuple(args.seeds), budget=args.budget, overrides=dict(args.set),
        call=dict(args.call), lowering=args.lowering, auto_effort=args.auto_effort,
        calibration_seed=args.calibration_seed, device=args.device, dtype=args.dtype, out=args.out,
        models=ScoreModels(lpips=args.lpips_model, clip=args.clip_model, imagereward=args.imagereward_model),
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = evaluate(config)
    written = write_all(result, Path(args.out), args.argv)
    print(markdown(result))
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="c4d", description="feature caching for diffusion transformers")
    sub = parser.add_subparsers(dest="command", required=True)
    inspect = sub.add_parser("inspect", help="show what the passes find in a model's graph")
    inspect.add_argument("model", help="a bundled tiny config (e.g. flux, wan) or module:factory -> (model, kwargs)")
    inspect.add_argument("--policy", default="taylorseer-lite", help="policy whose cache plan to show")
    inspect.set_defaults(func=_inspect)
    demo = sub.add_parser("demo", help="digits from a trained reference model: uncached, cached, fewer steps")
    demo.add_argument("--model", default="flux", help="reference model: flux, dit or dit-eps")
    demo.add_argument("--policy", default="taylorseer")
    demo.add_argument("--steps", type=int, default=50)
    demo.add_argument("--per-class", type=int, default=2)
    demo.add_argument("--repeats", type=int, default=3)
    demo.add_argument("--lowering", default="eager", help="eager or inductor (both sides)")
    demo.add_argument("--out", default="bench-out/demo.png")
    demo.set_defaults(func=_demo)
    bench = sub.add_parser("bench", help="models x methods: speed and fidelity vs uncached, fewer steps and peers")
    bench.add_argument("--quick", action="store_true", help="two reference models, a few methods, one repeat")
    bench.add_argument("--models", nargs="+", help="default: dit flux dit-eps flux-bench wan (with --budgets: the "
                       "trained models)")
    bench.add_argument("--policies", nargs="+", help="c4d presets (default: all; see `c4d policies`), each optionally "
                       "with options of its own: 'clusca[clusters=4,anchor=order0]'")
    bench.add_argument("--peers", nargs="*", help="peer caches (default: all registered; none: --peers)")
    bench.add_argument("--repeats", type=int, help="alternated timed runs per method")
    bench.add_argument("--steps", type=int, help="sampler steps (default: per model)")
    bench.add_argument("--per-class", type=int, help="images per digit on the reference models")
    bench.add_argument("--lowering", choices=["auto", "eager", "inductor"],
                       help="auto: inductor for random-weight speed configs, eager for reference models")
    bench.add_argument("--set", nargs="+", type=_option, default=[], metavar="KEY=VALUE",
                       help="override for every c4d preset, e.g. --set interval=6 warmup=3")
    bench.add_argument("--budgets", type=int, nargs="+", help="equal-compute study: every preset (default, paper "
                       "and calibrated schedule) and the peers' TaylorSeer at these full computations per generation")
    bench.add_argument("--auto", nargs="*", choices=["default", "fast"], help="with --budgets: policy='auto' "
                       "calibrated at each budget with these efforts (default: default fast; none: --auto)")
    bench.add_argument("--shifts", type=float, nargs="+", help="sampler grids of the trained flow models (time "
                       "shift; 1 = uniform; default 1, and 1 3 with --budgets)")
    bench.add_argument("--thresholds", type=float, nargs="+",
                       help="signal study: the signal presets (fbcache, teacache, customcache) and the peers' "
                            "signal caches at these thresholds, the fixed default preset at --budgets (default "
                            "6 10 16); every row against fewer steps at its compute")
    bench.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    bench.add_argument("--out", default="bench-out", help="folder for bench.md, bench.json, pareto.png")
    bench.set_defaults(func=_bench)
    calibrate = sub.add_parser("calibrate", help="fit caching to a model: --policy auto chooses region, forecaster, "
                               "variable and full steps by the final sample's error; a preset gets the full steps of "
                               "a budget (exact search), magcache its magnitude ratios")
    calibrate.add_argument("model", help="a trained reference model (dit, flux, ...) or module:factory -> (model, run)")
    calibrate.add_argument("--policy", default="auto", help="auto (default): measure and choose; or a preset")
    calibrate.add_argument("--budget", type=int, help="full computations per generation (step-set policies; "
                           "magcache records its magnitude ratios, teacache & co. fit their rescale polynomial)")
    calibrate.add_argument("--steps", type=int, default=50, help="sampler steps (reference models)")
    calibrate.add_argument("--seeds", type=int, nargs="+", default=[1], help="seeds recorded (reference models); "
                           "keep them apart from the seeds you evaluate on")
    calibrate.add_argument("--per-class", type=int, default=1, help="images per digit (reference models)")
    calibrate.add_argument("--shift", type=float, default=1.0, help="sampler time shift (flow reference models)")
    calibrate.add_argument("--set", nargs="+", type=_option, default=[], metavar="KEY=VALUE",
                           help="policy options searched with, e.g. --set region=output order=1")
    calibrate.add_argument("--effort", choices=["default", "fast"], help="--policy auto: how many candidates and "
                           "measurements (fast: output-region forecasts only, a short refinement)")
    calibrate.add_argument("--out", required=True, help="the schedule file to write (.json)")
    calibrate.set_defaults(func=_calibrate)
    exporter = sub.add_parser("export", help="write the cached model as ONNX files (one per variant, weights "
                              "stored once) and plan.json, run by c4d_compile.load_exported")
    exporter.add_argument("model", help="a bundled tiny config (e.g. dit, flux) or module:factory -> (model, kwargs)")
    exporter.add_argument("--policy", default="taylorseer")
    exporter.add_argument("--steps", type=int, required=True, help="step calls per context of one generation")
    exporter.add_argument("--set", nargs="+", type=_option, default=[], metavar="KEY=VALUE",
                          help="policy overrides, e.g. --set budget=8")
    exporter.add_argument("--out", required=True, help="the folder to write")
    exporter.add_argument("--check", action="store_true", help="run the export with onnxruntime against the torch "
                          "path along one sampling trajectory (Euler, each output feeding the next latent), and time "
                          "it cached and uncached (bundled configs)")
    exporter.set_defaults(func=_export)
    publish = sub.add_parser("publish", help="regenerate the tables of README.md and docs/*.md from the committed "
                             "results under docs/results/")
    publish.add_argument("--root", default=".", help="the repository root")
    publish.add_argument("--check", action="store_true", help="write nothing; exit 1 when a table is out of date")
    publish.set_defaults(func=_publish)
    evaluate = sub.add_parser("evaluate", help="your diffusers pipeline: uncached, each method, and uncached with "
                              "fewer steps at each method's compute; PSNR / SSIM (LPIPS, CLIP score, ImageReward with "
                              "local models), speed, cache memory: evaluate.md, evaluate.json, grid.png")
    evaluate.add_argument("--pipeline", required=True, help="a local pipeline directory (from_pretrained, local files "
                          "only) or module:factory -> pipeline or (pipeline, call_kwargs(prompt, seed, steps))")
    prompts = evaluate.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--prompts", nargs="+", help="the prompts")
    prompts.add_argument("--prompts-file", help="a text file, one prompt a line (# comments)")
    evaluate.add_argument("--steps", type=int, required=True, help="sampler steps of every cached and reference run")
    evaluate.add_argument("--methods", nargs="+", default=["taylorseer", "foca", "fora", "auto"],
                          help="c4d presets, auto (calibrated first), peers: diffusers-taylorseer, cache-dit-dbcache, "
                               "... (default: taylorseer foca fora auto)")
    evaluate.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds; every prompt runs with each")
    evaluate.add_argument("--budget", type=int, help="full steps per generation of every c4d preset and of auto "
                          "(default: the presets' own schedules; auto: one in 5)")
    evaluate.add_argument("--set", nargs="+", type=_option, default=[], metavar="KEY=VALUE",
                          help="override for every c4d preset, e.g. --set interval=4")
    evaluate.add_argument("--call", nargs="+", type=_option, default=[], metavar="KEY=VALUE",
                          help="pipeline arguments of every generation, e.g. --call height=1024 guidance_scale=3.5")
    evaluate.add_argument("--lowering", choices=["inductor", "eager"], default="inductor",
                          help="how c4d and the uncached reference compile (peers run uncompiled)")
    evaluate.add_argument("--auto-effort", choices=["default", "fast"], default="default",
                          help="auto's calibration: how many candidates and measurements")
    evaluate.add_argument("--calibration-seed", type=int, default=1000,
                          help="auto calibrates on the first prompt with this seed (never scored)")
    evaluate.add_argument("--lpips-model", help="torchvision's AlexNet weights file (needs the lpips package)")
    evaluate.add_argument("--clip-model", help="a local CLIP model directory (transformers)")
    evaluate.add_argument("--imagereward-model", help="a directory with ImageReward.pt and med_config.json (needs "
                          "the image-reward package and bert-base-uncased in the local Hugging Face cache)")
    evaluate.add_argument("--device", help="a pipeline directory's device (default: cuda if available)")
    evaluate.add_argument("--dtype", default="auto", help="a pipeline directory's dtype (auto: bfloat16 on CUDA, "
                          "float32 on CPU)")
    evaluate.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    evaluate.add_argument("--out", default="evaluate-out", help="folder for evaluate.md, evaluate.json, grid.png")
    evaluate.set_defaults(func=_evaluate)
    policies = sub.add_parser("policies", help="list the presets and their options")
    policies.set_defaults(func=_policies)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what was asked, as results record it
    try:
        return args.func(args)
    except C4DError as err:
        print(f"c4d: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
