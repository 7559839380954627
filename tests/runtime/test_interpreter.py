"""The step interpreter decides every step call: the torch Runtime runs what it answers, and the exported program
is its answers written down, so for every exportable preset the steps the compiled model ran are the program's,
call by call (the ONNX runner's side: ``tests/onnx_export/test_exporter.py``)."""

from __future__ import annotations

import pytest
import torch

from c4d_compile import c4d_backend
from c4d_compile.onnx_export.program import check_exportable, step_program
from c4d_compile.policies import list_policies
from c4d_compile.runtime.interpreter import NeedsSignalError, StepCall, StepInterpreter
from c4d_compile.runtime.step_program import StepInfo, VariantKind
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

STEPS = 10
# every preset, as it exports: signal schedules decide on the device, a schedule needing the user's model's
# measurements is given them; "auto" runs a calibration file (tests/onnx_export: what auto chose exports)
EXPORTED = {"fbcache": {"decision": "device"}, "teacache": {"decision": "device"}, "adacache": {"decision": "device"},
            "magcache": {"ratios": (1.0, 0.99, 0.98, 0.96, 0.93, 0.9, 0.85, 0.8)},
            "dbcache": {"decision": "device", "first_blocks": 1}}
NOT_EXPORTED = {"auto", "easycache", "seacache", "speca", "customcache"}  # calibration file; host signals; verification


@pytest.fixture(scope="module")
def dit():
    spec = get_tiny_model("dit")
    return spec, spec.build(), spec.make_inputs()


def _compiled_run(dit, policy, **overrides):
    spec, model, inputs = dit
    torch._dynamo.reset()
    backend = c4d_backend(policy, lowering="eager", num_steps=STEPS, **overrides)
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    backend.session.step_records = []
    for t in spec.timesteps(STEPS):
        with torch.no_grad():
            compiled(**{**inputs, spec.timestep_key: t})
    return backend, [call for _, call in backend.session.step_records]


@pytest.mark.parametrize("policy", sorted(set(list_policies()) - NOT_EXPORTED))
def test_the_compiled_model_runs_the_exported_program(dit, policy):
    backend, ran = _compiled_run(dit, policy, **EXPORTED.get(policy, {}))
    check_exportable(backend.policy, backend.plan)
    program = step_program(backend.policy, backend.plan, STEPS, backend.rewrite.variants)
    assert ran == program
    assert ran[0].variant is VariantKind.FULL and len({c.variant for c in ran}) > 1  # it cached


def test_a_host_signal_runs_the_prelude_and_cannot_be_written_down(dit):
    """fbcache deciding on the host: the probe runs at every call (its signal decides), and the exporter, which
    measures nothing, is told so instead of guessing."""
    backend, ran = _compiled_run(dit, "fbcache", threshold=0.3)
    assert all(call.prelude == (VariantKind.PROBE,) for call in ran)
    interpreter = StepInterpreter(backend.policy, backend.plan, backend.rewrite.variants)
    with pytest.raises(NeedsSignalError):
        interpreter.step(StepInfo(1, STEPS, [0]), None)


def test_the_prelude_runs_only_when_the_decision_or_the_variant_needs_it(dit):
    backend, _ = _compiled_run(dit, "fbcache", decision="device")
    interpreter = StepInterpreter(backend.policy, backend.plan, backend.rewrite.variants)
    runs = []
    first = interpreter.step(StepInfo(0, STEPS, []), lambda: runs.append(0))  # FULL keeps the probe's reference
    later = interpreter.step(StepInfo(1, STEPS, [0]), lambda: runs.append(1))  # DECIDE holds its own probe
    assert (first.variant, first.prelude, later.variant, later.prelude) == (
        VariantKind.FULL, (VariantKind.PROBE,), VariantKind.DECIDE, ())
    assert runs == [0] and later.force is False


def test_forecast_weights_are_the_forecasters_over_the_history(dit):
    """A plainly written check: taylorseer order 1 at step 3 from full steps 0 and 2 extrapolates linearly."""
    backend, _ = _compiled_run(dit, "taylorseer", order=1, interval=2)
    interpreter = StepInterpreter(backend.policy, backend.plan, backend.rewrite.variants)
    call = interpreter.step(StepInfo(3, STEPS, [0, 2]), None)
    assert call.variant is VariantKind.CACHED and call.history == (2, 0)
    # f(3) = f(2) + (3 - 2) * (f(2) - f(0)) / 2 = 1.5 f(2) - 0.5 f(0)
    assert call.weights[:2] == pytest.approx((1.5, -0.5)) and all(w == 0 for w in call.weights[2:])
    assert interpreter.step(StepInfo(3, STEPS, [0, 2]), None) == call  # memoised: the same values
    assert isinstance(call, StepCall) and call.to_json()["history"] == [2, 0]
