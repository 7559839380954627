"""``export(model, example_kwargs, policy, out_dir)``: the cached model as ONNX files and ``plan.json``.

The same passes as the backend (analyze -> plan -> rewrite), then per variant the program runs, one
ONNX file with the cache state as explicit inputs and outputs; the weights go once into a shared
``weights.bin``; ``plan.json`` holds the step program and the state spec (``plan_file.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx_ir as ir
import torch
import torch.fx as fx
from torch._ops import HigherOrderOperator
from tqdm.auto import tqdm

from ..compiler.opaque_calls import opaque_modules
from ..compiler.passes.analyze import analyze
from ..compiler.passes.rewrite import RewriteResult, build_variants
from ..compiler.plan import CachePlan, make_plan
from ..compiler.variant_examples import named_examples
from ..errors import InvalidValueError, NotExportableError
from ..policies import Policy, get_policy
from ..runtime.step_program import VariantKind
from .capture import CapturedModel, ModelInput, capture_model
from .onnx_files import export_variant
from .plan_file import ExportedPlan, VariantFile, file_sha256, write_plan
from .program import check_exportable, step_program
from .weights import SharedWeights

# higher-order ops torch.onnx has no conversion for, with what to do instead
NO_ONNX_CONVERSION = {
    "flex_attention": "set the model's attention back to SDPA before exporting: model.set_attention_backend('native')",
}


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    plan: ExportedPlan
    seconds: float
    onnx_bytes: dict[str, int]  # per variant file, the weights not counted
    weights_bytes: int  # the shared weights file
    moved_bytes: int  # initializer bytes the variant files would hold without sharing
    rewrites: dict[str, int]  # exporter gaps bridged: rewrite pass -> patterns rewritten (the most in one variant)

    def summary(self) -> str:
        files = ", ".join(f"{name} {size / 1024:.0f} KiB" for name, size in self.onnx_bytes.items())
        kinds = [step.variant for step in self.plan.program]
        full = sum(k is VariantKind.FULL for k in kinds)
        decided = sum(k is VariantKind.DECIDE for k in kinds)
        return (f"exported {len(self.onnx_bytes)} variant(s) to {self.directory} in {self.seconds:.1f} s: {files}; "
                f"weights.bin {self.weights_bytes / 2**20:.1f} MiB (stored once; "
                f"{self.moved_bytes / 2**20:.1f} MiB across the variants); program: {full} full"
                + (f", {decided} decided on the device" if decided else "") + f" of {len(kinds)} steps"
                + "".join(f"; {name}: {count}" for name, count in self.rewrites.items()))


def export(model: torch.nn.Module, example_kwargs: dict[str, Any], policy: str | Policy, out_dir: str | Path, *,
           num_steps: int | None = None, timesteps: Sequence | torch.Tensor | None = None, progress: bool = True,
           **overrides: Any) -> ExportResult:
    """Write ``model`` cached with ``policy`` (a preset name or Policy, plus overrides) to ``out_dir``.

    ``example_kwargs`` are the model's keyword arguments of one step call (their shapes are the exported
    ones); ``num_steps`` is the step calls per context of a generation (default: the policy's, or the number of
    ``timesteps``: the sampler's, one per step call, needed when the policy forecasts in the timestep).
    ``load_exported(out_dir)`` runs it with onnxruntime.
    """
    started = time.perf_counter()
    resolved = get_policy(policy, **overrides)
    if timesteps is not None:
        timesteps = [float(t) for t in (timesteps.reshape(-1).tolist() if isinstance(timesteps, torch.Tensor)
                                        else timesteps)]
        if num_steps is not None and num_steps != len(timesteps):
            raise InvalidValueError("num_steps", num_steps, f"{len(timesteps)}, the number of timesteps given")
        num_steps = len(timesteps)
    steps = num_steps if num_steps is not None else resolved.num_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidValueError("num_steps", steps, "an integer >= 1 (export writes the program of one generation)")
    captured = capture_model(model, example_kwargs)
    gm = captured.gm
    analysis = analyze(gm)
    if not analysis.cacheable:
        raise NotExportableError(f"nothing to cache in this model: {'; '.join(analysis.problems)}")
    opaque = opaque_modules(gm)
    if opaque:  # eager Python inside the graph: nothing an ONNX runtime can run
        raise NotExportableError(f"the graph calls {', '.join(opaque)} opaquely (graph breaks inside it split the "
                                 "block stack, see docs/step-program.md): ONNX cannot hold that call")
    unconverted = sorted({name for n in gm.graph.nodes if (name := _higher_order_name(n)) in NO_ONNX_CONVERSION})
    if unconverted:
        raise NotExportableError("; ".join(f"the graph calls torch.ops.higher_order.{name}, which torch.onnx does not "
                                           f"convert: {NO_ONNX_CONVERSION[name]}" for name in unconverted))
    plan = make_plan(gm, analysis, resolved)
    check_exportable(resolved, plan, timesteps)
    rewrite = build_variants(gm, plan)
    program = step_program(resolved, plan, steps, rewrite.variants, timesteps)
    used = {VariantKind.FULL, *(kind for step in program for kind in (*step.prelude, step.variant))}
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    shared = SharedWeights(directory)
    try:
        files, sizes, moved, rewrites = _write_variants(captured, plan, rewrite, used, shared, progress)
    finally:
        shared.close()
    exported = ExportedPlan(
        policy={"name": resolved.name, "options": resolved.options()}, num_steps=steps,
        inputs=tuple(captured.model_inputs()), fixed=captured.fixed,
        timesteps=tuple(captured.inputs[t.position].name for t in analysis.timesteps), outputs=captured.outputs,
        variants=files, state=tuple(e for e in plan.state if any(k in used for k in (*e.read_by, *e.written_by))),
        program=tuple(program), num_slots=plan.num_slots, weights_file=shared.filename, weights_bytes=shared.size,
        host_inputs=_host_inputs(resolved, plan), weights_sha256=shared.sha256)
    write_plan(exported, directory)
    return ExportResult(directory, exported, time.perf_counter() - started, sizes, shared.size, moved, rewrites)


def _higher_order_name(node: fx.Node) -> str | None:
    target = node.target
    return target.name() if node.op == "call_function" and isinstance(target, HigherOrderOperator) else None


def _write_variants(captured: CapturedModel, plan: CachePlan, rewrite: RewriteResult, used: set[VariantKind],
                    shared: SharedWeights, progress: bool):
    """One ONNX file per variant the program runs, its large weights moved into the shared file."""
    files, sizes, moved, rewrites = {}, {}, 0, {}
    kinds = [kind for kind in rewrite.variants if kind in used]
    for kind in tqdm(kinds, desc="c4d export", unit="variant", disable=not progress):
        variant = rewrite.variants[kind]
        path = shared.directory / f"{kind.value}.onnx"
        examples = named_examples(variant, plan, captured.gm, captured.example_inputs)
        model_ir, bridged = export_variant(captured, variant, examples)
        for name, count in bridged.items():
            rewrites[name] = max(rewrites.get(name, 0), count)
        moved += shared.move(model_ir)
        ir.save(model_ir, path)
        sizes[path.name] = path.stat().st_size
        files[kind] = VariantFile(kind, path.name, file_sha256(path), variant.num_outputs, variant.inputs,
                                  variant.outputs)
    return files, sizes, moved, rewrites


def _host_inputs(policy: Policy, plan: CachePlan) -> tuple[ModelInput, ...]:
    if VariantKind.PARTIAL not in plan.variant_kinds:
        return ()
    return tuple(ModelInput(name, draw.shape, draw.dtype) for name, draw in plan.tokens.host_inputs().items())
