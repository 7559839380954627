"""Every forecaster's CACHED step, in the compiled graph, against the method written plainly: the
model run eagerly, with the forecast of each cached value made by hand from the values recorded at the
full steps (branch region: forward hooks on the modules that produce each residual branch F; output
region: the model output), at an interval > 1 so forecasts are really made."""

import pytest
import torch
from support.sampling import sample

from c4d_compile import c4d_backend, get_policy
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

# which modules produce a residual branch F, per model (the reference needs names; the pass does not)
BRANCH_MODULES = {
    "flux": lambda m: [mod for b in m.transformer_blocks for mod in (b.attn, b.ff, b.ff_context)]
    + [b.proj_out for b in m.single_transformer_blocks],
    "wan": lambda m: [mod for b in m.blocks for mod in (b.attn1, b.attn2, b.ffn)],
}
SCHEDULE = {"interval": 3, "warmup": 1, "variable": "step"}  # full at 0, 3, 6, 9


class PlainForecast:
    """Records each cached value at the full steps and replaces it on cached steps by
    sum_j w_j F(full step j), with the forecaster's weights over the step index."""

    def __init__(self, forecaster, schedule):
        self.forecaster, self.schedule = forecaster, schedule
        self.step, self.full_steps, self.history = -1, [], {}

    def begin_step(self) -> None:
        self.step += 1
        last = self.full_steps[-1] if self.full_steps else None
        self.full = self.schedule.is_full(self.step, last, None)
        if self.full:
            self.full_steps.append(self.step)

    def value(self, key, computed):
        if self.full:
            self.history[key] = [computed, *self.history.get(key, [])][: self.forecaster.num_slots]
            return computed
        history = self.full_steps[::-1][: self.forecaster.num_slots]
        weights = self.forecaster.weights(float(self.step), [float(s) for s in history])
        forecast = sum(w * v.float() for w, v in zip(weights, self.history[key]))
        return forecast.to(computed.dtype)

    def hook(self, index):
        def replace(module, args, output):
            outputs = output if isinstance(output, tuple) else (output,)
            result = [self.value((index, j), value) for j, value in enumerate(outputs)]
            return tuple(result) if isinstance(output, tuple) else result[0]

        return replace


def compare(spec, model_for_c4d, reference_call, policy):
    backend = c4d_backend(policy, lowering="eager", **SCHEDULE)
    _, got = sample(torch.compile(model_for_c4d, backend=backend, fullgraph=True), spec, num_steps=11)
    _, expected = sample(reference_call, spec, num_steps=11)
    assert backend.stats().cached_steps == 7
    for step, (a, b) in enumerate(zip(got, expected)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=f"step {step}")


@pytest.mark.parametrize("policy", ["taylorseer", "foca", "hicache", "fora"])
@pytest.mark.parametrize("name", ["flux", "wan"])
def test_branch_forecasts_match_the_plain_method(name, policy):
    spec = get_tiny_model(name)
    resolved = get_policy(policy, **SCHEDULE)
    plain = PlainForecast(resolved.forecaster, resolved.schedule)
    hooked = spec.build()
    for index, module in enumerate(BRANCH_MODULES[name](hooked)):
        module.register_forward_hook(plain.hook(index))

    def reference(**kwargs):
        plain.begin_step()
        return hooked(**kwargs)

    compare(spec, spec.build(), reference, policy)


@pytest.mark.parametrize("policy", ["taylorseer-lite", "abcache"])
@pytest.mark.parametrize("name", ["flux", "wan"])
def test_output_forecasts_match_the_plain_method(name, policy):
    spec = get_tiny_model(name)
    resolved = get_policy(policy, **SCHEDULE)
    plain = PlainForecast(resolved.forecaster, resolved.schedule)
    model = spec.build()

    def reference(**kwargs):
        plain.begin_step()
        out = model(**kwargs)[0] if plain.full else torch.zeros(())
        return (plain.value("output", out),)

    compare(spec, spec.build(), reference, policy)
