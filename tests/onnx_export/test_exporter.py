"""The exported program run by onnxruntime gives what the torch path gives, step by step and along the sampling
trajectory, for every region and fixed schedule family; what does not export says so before anything is written."""

from __future__ import annotations

import pytest
import torch

from c4d_compile import ExportedCallError, NotExportableError, c4d_backend, get_policy
from c4d_compile.onnx_export import export, load_exported
from c4d_compile.onnx_export.compare import check_export, trajectory
from c4d_compile.policies.forecasters.base import slot_weights
from c4d_compile.runtime.contexts import call_context
from c4d_compile.runtime.step_program import VariantKind
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

TOLERANCE = 1e-4  # float32 through two runtimes' kernels; the differences seen are ~1e-6


def _loop(model, spec, inputs, steps, contexts=(None,), timesteps=None):
    outs = []
    for t in spec.timesteps(steps) if timesteps is None else timesteps:
        kwargs = {**inputs, spec.timestep_key: t.to(inputs[spec.timestep_key].dtype)}
        for name in contexts:
            with torch.no_grad():
                if name is None:
                    out = model(**kwargs)
                else:
                    with call_context(name):
                        out = model(**kwargs)
            outs.append(out[0] if isinstance(out, tuple) else out)
    return outs


def _max_error(reference, exported):
    return max(float((a - b).abs().max()) for a, b in zip(reference, exported))


def _recording(backend, runner):
    """Start recording the steps both executors run."""
    backend.session.step_records, runner.step_records = [], []


def _ran_the_program(backend, runner, program, generations=1):
    """The step interpreter's three executors agree exactly: the torch Runtime and the ONNX runner ran, call by
    call, the steps the exported program holds (every context of every generation: the whole program in order)."""
    ours, theirs = backend.session.step_records, runner.step_records
    assert ours == theirs
    contexts = {context for context, _ in ours}
    for context in contexts:
        assert [call for c, call in ours if c == context] == list(program) * generations


def test_the_export_check_agrees_with_torch_along_a_whole_sampling_trajectory(dit_export):
    """check_export over the export's whole generation: each side's outputs move its own latent, so a
    difference at one step reaches every later one; both the outputs and the final latent agree."""
    spec, model, inputs, result = dit_export
    steps = result.plan.num_steps
    check = check_export(result.directory, model, spec, inputs, steps, "taylorseer", repeats=1)
    assert check.steps == steps
    assert check.max_error < TOLERANCE and check.final_error < TOLERANCE
    kinds = [s.variant.value for s in result.plan.program]
    assert check.calls == {"full": kinds.count("full"), "cached": kinds.count("cached")}
    assert 0 < kinds.count("full") < steps
    runner = load_exported(result.directory)
    first, _ = trajectory(runner, spec, inputs, steps)
    second, _ = trajectory(runner, spec, inputs, steps)  # replays the program from step 0 (the timestep moved up)
    assert torch.equal(first, second)


def test_the_trajectory_feeds_each_output_into_the_next_latent(dit_export):
    """What the check runs is a sampler: it matches a plainly written Euler loop, and its latent moves."""
    spec, model, inputs, result = dit_export
    steps = result.plan.num_steps
    final, outputs = trajectory(model, spec, inputs, steps)
    latent, expected = inputs[spec.latent_key], []
    times = [float(t) / 1000 for t in spec.timesteps(steps)] + [0.0]  # DiT: discrete timesteps 999..0
    for i, t in enumerate(spec.timesteps(steps)):
        with torch.no_grad():
            out = model(**{**inputs, spec.latent_key: latent, spec.timestep_key: t})[0]
        expected.append(out)
        latent = latent + (times[i + 1] - times[i]) * out[:, :latent.shape[1]]  # learned-sigma channels dropped
    assert torch.equal(final, latent) and all(torch.equal(a, b) for a, b in zip(outputs, expected, strict=True))
    assert (final - inputs[spec.latent_key]).abs().max() > 0.1
    with torch.no_grad():  # the last step at the starting latent: not what the trajectory computed
        held = model(**{**inputs, spec.timestep_key: spec.timesteps(steps)[-1]})[0]
    assert (held - outputs[-1]).abs().max() > 1e-3


@pytest.mark.parametrize("name,policy,overrides", [
    ("flux", "taylorseer-lite", {"budget": 4}),  # output region, budget schedule
    ("qwenimage", "stack-reuse", {}),  # stack region, history of one; complex rotary rewritten for the exporter
    ("wan", "foca", {}),  # branch region, a forecaster with its own weights
    ("dit", "magcache", {"ratios": (1.0, 0.99, 0.98, 0.96, 0.93, 0.9, 0.85, 0.8)}),  # magnitude schedule
])
def test_regions_and_schedules_with_guidance_contexts(tmp_path, name, policy, overrides):
    spec = get_tiny_model(name)
    model, inputs, steps = spec.build(), spec.make_inputs(), 8
    result = export(model, inputs, policy, tmp_path, num_steps=steps, progress=False, **overrides)
    torch._dynamo.reset()
    backend = c4d_backend(policy, lowering="eager", num_steps=steps, **overrides)
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    contexts = ("cond", "uncond")  # separate-call guidance: one cache per context on both sides
    runner = load_exported(result.directory)
    _recording(backend, runner)
    reference = _loop(compiled, spec, inputs, steps, contexts)
    exported = _loop(runner, spec, inputs, steps, contexts)
    _ran_the_program(backend, runner, result.plan.program)
    assert len(backend.session.step_records) == 2 * steps
    assert _max_error(reference, exported) < TOLERANCE
    assert runner.calls["cached"] == 2 * sum(s.variant.value == "cached" for s in result.plan.program) > 0
    uncached = load_exported(result.directory, cached=False)
    plain = _loop(model, spec, inputs, steps)
    assert _max_error(plain, _loop(uncached, spec, inputs, steps)) < TOLERANCE
    assert uncached.calls == {"full": steps}


@pytest.mark.parametrize("name", ["sd3", "pixart", "hunyuanvideo", "cogvideox", "ltxvideo"])
def test_every_bundled_config_exports(tmp_path, name):
    """The configs the tests above do not export: output region (the smallest cached file), 6 steps, along the
    sampling trajectory."""
    spec = get_tiny_model(name)
    model, inputs, steps = spec.build(), spec.make_inputs(), 6
    export(model, inputs, "taylorseer-lite", tmp_path, num_steps=steps, progress=False, budget=2)
    torch._dynamo.reset()
    backend = c4d_backend("taylorseer-lite", lowering="eager", num_steps=steps, budget=2)
    final, reference = trajectory(torch.compile(model, backend=backend, fullgraph=True), spec, inputs, steps)
    exported_final, exported = trajectory(load_exported(tmp_path), spec, inputs, steps)
    assert _max_error(reference, exported) < TOLERANCE
    assert float((final - exported_final).abs().max()) < TOLERANCE


def _euler(model, inputs, sigmas):
    """A sampling loop: each step's output moves the latent the next step reads (Euler on the flow)."""
    latent, outs = inputs["hidden_states"], []
    for sigma, after in zip(sigmas, sigmas[1:]):
        with torch.no_grad():
            out = model(**{**inputs, "hidden_states": latent, "timestep": sigma.reshape(1)})
        out = out[0] if isinstance(out, tuple) else out
        outs.append(out)
        latent = latent + (after - sigma) * out
    return outs


def test_a_conditioning_list_on_a_buffer_is_recomputed_at_cached_steps(tmp_path):
    """Chroma's modulations come from a ModuleList (the distilled guidance layer) that reads the timestep and a
    buffer: not a stack, its output an invariant computed at every step. The export has to tell that buffer from
    the caller's inputs as the backend does, after Dynamo is done with the graph: else the list counts as blocks
    on the data and the cached file forecasts the modulations from the last full step."""
    from support.pipelines import PIPELINES

    model = PIPELINES["chroma"].build().transformer  # the pipeline tests' tiny Chroma
    gen = torch.Generator().manual_seed(0)
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    inputs = {"hidden_states": torch.randn(1, 16, 16, generator=gen),
              "encoder_hidden_states": torch.randn(1, 8, 32, generator=gen), "timestep": torch.ones(1),
              "img_ids": torch.stack([torch.zeros(16), rows.reshape(-1), cols.reshape(-1)], dim=1),
              "txt_ids": torch.zeros(8, 3), "return_dict": False}
    steps = 10
    result = export(model, inputs, "taylorseer", tmp_path, num_steps=steps, progress=False)
    torch._dynamo.reset()
    backend = c4d_backend("taylorseer", lowering="eager", num_steps=steps)
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    runner = load_exported(tmp_path)
    _recording(backend, runner)
    reference = _euler(torch.compile(model, backend=backend, fullgraph=True), inputs, sigmas)
    exported = _euler(runner, inputs, sigmas)
    _ran_the_program(backend, runner, result.plan.program)
    cached = [i for i, s in enumerate(result.plan.program) if s.variant is VariantKind.CACHED]
    assert len(cached) == steps - 2
    assert _max_error([reference[i] for i in cached], [exported[i] for i in cached]) < TOLERANCE
    assert _max_error(reference, exported) < TOLERANCE
    assert [e.name for e in result.plan.state] == [e.name for e in backend.plan.state]  # the backend's features


def test_a_signal_decision_exports_as_an_onnx_if(tmp_path):
    """fbcache with decision='device': the probe, the rule and both continuations in one DECIDE file."""
    import onnx

    spec = get_tiny_model("flux")
    model, inputs, steps = spec.build(), spec.make_inputs(), 12
    options = {"decision": "device", "threshold": 0.3}  # on this random model: about half the steps full
    result = export(model, inputs, "fbcache", tmp_path, num_steps=steps, progress=False, **options)
    decide = onnx.load(str(tmp_path / "decide.onnx"), load_external_data=False)
    assert [n.op_type for n in decide.graph.node].count("If") == 1
    program = result.plan.program
    assert [s.prelude for s in program[:2]] == [(VariantKind.PROBE,), ()]
    assert {s.variant for s in program[1:]} == {VariantKind.DECIDE}
    torch._dynamo.reset()
    backend = c4d_backend("fbcache", lowering="eager", num_steps=steps, **options)
    runner = load_exported(tmp_path)
    _recording(backend, runner)
    reference = _loop(torch.compile(model, backend=backend, fullgraph=True), spec, inputs, steps)
    assert _max_error(reference, _loop(runner, spec, inputs, steps)) < TOLERANCE
    _ran_the_program(backend, runner, program)
    last = backend.stats().last
    assert runner.calls == {"full": last.full_steps, "cached": last.cached_steps}
    assert runner.calls["full"] > 1 and runner.calls["cached"] > 1


@pytest.mark.parametrize("policy", ["duca", "clusca", "toca"])
def test_token_subsets_export_with_their_rows_in_the_program(tmp_path, policy):
    """A partial step's rows (duca) or draws (clusca: k-means in the FULL file) are program data; toca picks its
    rows inside the PARTIAL file."""
    spec = get_tiny_model("dit")
    model, inputs, steps = spec.build(), spec.make_inputs(), 10
    result = export(model, inputs, policy, tmp_path, num_steps=steps, progress=False)
    partial = [s for s in result.plan.program if s.variant is VariantKind.PARTIAL]
    assert partial and all(set(s.tokens) == {x.name for x in result.plan.host_inputs} for s in partial)
    torch._dynamo.reset()
    backend = c4d_backend(policy, lowering="eager", num_steps=steps)
    runner = load_exported(tmp_path)
    _recording(backend, runner)
    reference = _loop(torch.compile(model, backend=backend, fullgraph=True), spec, inputs, steps)
    assert _max_error(reference, _loop(runner, spec, inputs, steps)) < TOLERANCE
    _ran_the_program(backend, runner, result.plan.program)  # the rows each partial call recomputed too
    assert runner.calls["partial"] == len(partial)
    plain = _loop(model, spec, inputs, steps)
    assert _max_error(plain, _loop(runner, spec, inputs, steps)) > 1e-3  # the second generation forecasts too


def test_forecasts_in_the_timestep_export_for_the_samplers_timesteps(tmp_path):
    spec = get_tiny_model("dit")
    model, inputs, steps = spec.build(), spec.make_inputs(), 10
    sigmas = torch.linspace(1.0, 0.1, steps)
    timesteps = [(1000 * 3 * s / (1 + 2 * s)).round().long().reshape(1) for s in sigmas]  # shifted: uneven grid
    with pytest.raises(NotExportableError, match="timesteps="):
        export(model, inputs, "taylorseer", tmp_path, num_steps=steps, progress=False, variable="timestep")
    result = export(model, inputs, "taylorseer", tmp_path, timesteps=torch.cat(timesteps), progress=False,
                    variable="timestep", order=2, interval=3)
    forecaster = get_policy("taylorseer", order=2).forecaster
    by_step = [slot_weights(forecaster, i, s.history, 3) for i, s in enumerate(result.plan.program) if s.weights]
    assert by_step != [s.weights for s in result.plan.program if s.weights]  # the timesteps moved the weights
    torch._dynamo.reset()
    backend = c4d_backend("taylorseer", lowering="eager", num_steps=steps, variable="timestep", order=2, interval=3)
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    runner = load_exported(tmp_path)
    _recording(backend, runner)
    reference = _loop(compiled, spec, inputs, steps, timesteps=timesteps)
    assert _max_error(reference, _loop(runner, spec, inputs, steps, timesteps=timesteps)) < TOLERANCE
    _ran_the_program(backend, runner, result.plan.program)  # each forecast's timestep and weights too
    runner.reset()
    with pytest.raises(ExportedCallError, match="exported for timestep"):
        _loop(runner, spec, inputs, steps)  # an even grid: not what the weights were computed for


@pytest.mark.parametrize("policy,match", [("fbcache", "decision='device'"), ("speca", "verify"),
                                          ("taylorseer", "timesteps=")])
def test_what_does_not_export_is_refused_before_writing(tmp_path, policy, match):
    spec = get_tiny_model("dit")
    overrides = {"variable": "timestep"} if match == "timesteps=" else {}
    with pytest.raises(NotExportableError, match=match):
        export(spec.build(), spec.make_inputs(), policy, tmp_path / "out", num_steps=8, progress=False, **overrides)
    assert not (tmp_path / "out").exists()


def test_a_model_with_an_opaque_call_is_refused_before_writing(tmp_path):
    from support.routed import build

    from c4d_compile.compiler.opaque_calls import make_opaque

    model = build()
    for block in model.blocks:  # what the backend does to a stack split inside its blocks
        make_opaque(block.ff)
    inputs = {"x": torch.randn(1, 16, 8), "timestep": torch.tensor([999.0])}
    with pytest.raises(NotExportableError, match="calls Routed opaquely"):
        export(model, inputs, "taylorseer", tmp_path / "out", num_steps=4, progress=False)
    assert not (tmp_path / "out").exists()


def test_what_auto_chose_exports_and_runs_as_the_torch_backend_runs_it(tmp_path):
    """policy='auto' writes an ordinary calibrated schedule: the exported program replays it, fitted weights
    (a table in the file) included."""
    from c4d_compile.calibration import calibrate
    from c4d_compile.calibration.candidates import Candidate, Effort
    from c4d_compile.policies import Region
    from c4d_compile.policies.forecasters import AdamsBashforth, FoCa, LeastSquares

    spec = get_tiny_model("flux")
    model, inputs, steps = spec.build(), spec.make_inputs(), 8
    effort = Effort("small", (Candidate(Region.OUTPUT, AdamsBashforth(order=3, binomial=True)),
                              Candidate(Region.BRANCH, FoCa())), searched=0, refined=1, evaluations=4, fitted=2)
    cal = calibrate(model, lambda call: torch.stack(_loop(call, spec, inputs, steps)), "auto", budget=3,
                    out=tmp_path / "auto.json", effort=effort, progress=False)
    assert isinstance(cal.candidate.forecaster, LeastSquares)  # against these two, the fitted weights win
    torch._dynamo.reset()
    result = export(model, inputs, "auto", tmp_path / "exported", schedule=str(cal.path),
                    timesteps=spec.timesteps(steps), progress=False)
    assert [i for i, s in enumerate(result.plan.program) if s.variant is VariantKind.FULL] == list(cal.full_steps)
    torch._dynamo.reset()
    backend = c4d_backend("auto", schedule=str(cal.path), lowering="eager")
    runner = load_exported(tmp_path / "exported")
    _recording(backend, runner)
    reference = _loop(torch.compile(model, backend=backend, fullgraph=True), spec, inputs, steps)
    assert _max_error(reference, _loop(runner, spec, inputs, steps)) < TOLERANCE
    _ran_the_program(backend, runner, result.plan.program)
