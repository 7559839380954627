"""The runner refuses calls it was not exported for instead of returning a wrong result."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

from c4d_compile import ExportedCallError, InvalidValueError, MissingDependencyError
from c4d_compile.onnx_export import load_exported


def _call(runner, spec, inputs, step, steps, **changes):
    t = spec.timesteps(steps)[step].to(inputs[spec.timestep_key].dtype)
    return runner(**{**inputs, spec.timestep_key: t, **changes})


@pytest.mark.compat("resolutions", "export", "another size", refused="ExportedCallError")
def test_wrong_inputs_are_named(dit_export):
    spec, _, inputs, result = dit_export
    runner = load_exported(result.directory)
    with pytest.raises(ExportedCallError, match="exported as float32"):
        _call(runner, spec, inputs, 0, 10, hidden_states=inputs["hidden_states"][..., :4])
    with pytest.raises(ExportedCallError, match="unexpected input 'scale'"):
        _call(runner, spec, inputs, 0, 10, scale=torch.ones(1))
    with pytest.raises(ExportedCallError, match=r"missing input\(s\) \['class_labels'\]"):
        runner(**{k: v for k, v in inputs.items() if k != "class_labels"})
    with pytest.raises(ExportedCallError, match="return_dict=True: the model was exported with return_dict=False"):
        _call(runner, spec, inputs, 0, 10, return_dict=True)


def test_steps_past_the_program_are_refused(dit_export):
    spec, _, inputs, result = dit_export
    runner = load_exported(result.directory)
    for step in range(10):
        _call(runner, spec, inputs, step, 10)
    with pytest.raises(ExportedCallError, match="exported for generations of 10 steps"):
        runner(**{**inputs, spec.timestep_key: torch.zeros_like(inputs[spec.timestep_key])})
    runner.reset()
    _call(runner, spec, inputs, 0, 10)  # after reset, step 0 again
    with pytest.raises(InvalidValueError, match="the exported step count"):
        runner.begin_generation(num_steps=12)


def test_a_history_other_than_the_programs_is_refused(dit_export):
    spec, _, inputs, result = dit_export
    runner = load_exported(result.directory)
    cached = next(i for i, s in enumerate(result.plan.program) if s.variant.value == "cached")
    with pytest.raises(ExportedCallError, match="steps were skipped"), runner.cache_context("cond", step_index=cached):
        _call(runner, spec, inputs, cached, 10)


def test_a_missing_onnx_runtime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    for name in [m for m in sys.modules if m.startswith("c4d_compile.onnx_export")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingDependencyError, match=r"pip install 'c4d-compile\[onnx\]'"):
        importlib.import_module("c4d_compile.onnx_export")
