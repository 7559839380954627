"""Inductor lowering: a few models, float tolerance against eager (compiles are slow here)."""

import pytest
import torch
from support.sampling import sample

from c4d_compile import c4d_backend
from c4d_compile.zoo.tiny_diffusers import get_tiny_model


# the branch region with token clusters (k-means in the full step, partial steps) on a two-stream model, the
# output region on a single-stream one
@pytest.mark.parametrize("name,policy", [("flux", "clusca"), ("wan", "taylorseer-lite")])
def test_inductor_matches_eager_on_every_step_kind(name, policy):
    spec = get_tiny_model(name)
    model = spec.build()
    reference, _ = sample(model, spec, num_steps=8)
    exact = c4d_backend(policy, lowering="inductor", interval=1)
    got, _ = sample(torch.compile(model, backend=exact), spec, num_steps=8)
    torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-4)

    torch._dynamo.reset()
    eager = c4d_backend(policy, lowering="eager", interval=2, warmup=2)
    inductor = c4d_backend(policy, lowering="inductor", interval=2, warmup=2)
    a, _ = sample(torch.compile(model, backend=eager), spec, num_steps=8)
    torch._dynamo.reset()
    b, _ = sample(torch.compile(model, backend=inductor), spec, num_steps=8)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    assert inductor.stats().cached_steps == eager.stats().cached_steps == 3


def test_inductor_with_dynamic_shapes_after_a_resolution_change():
    spec = get_tiny_model("dit")
    model = spec.build()
    backend = c4d_backend("stack-reuse", lowering="inductor")
    cm = torch.compile(model, backend=backend)
    for batch in (1, 2, 3):  # Dynamo recompiles with a symbolic batch size
        inputs = spec.make_inputs(batch=batch)
        got, _ = sample(cm, spec, num_steps=5, inputs=inputs, batch=batch)
        # the same schedule on a backend that never saw another shape, eager
        fresh = c4d_backend("stack-reuse", lowering="eager")
        reference, _ = sample(torch.compile(model, backend=fresh), spec, num_steps=5, inputs=inputs, batch=batch)
        torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-4)
    assert backend.stats().cached_steps == 3 * 3  # W=1, N=3 over 5 steps: full at 0 and 3


def test_inductor_runs_the_probe_and_its_continuations_like_eager():
    """The probe's cut (PROBE, then FULL or CACHED from its values) compiles into three inductor graphs whose
    decisions and outputs follow the eager lowering's."""
    spec = get_tiny_model("flux")
    model = spec.build()
    runs = {}
    for lowering in ("eager", "inductor"):
        torch._dynamo.reset()
        backend = c4d_backend("customcache", lowering=lowering, threshold=0.15, num_steps=8)
        runs[lowering] = (sample(torch.compile(model, backend=backend), spec, num_steps=8)[0],
                          backend.stats().last.contexts["branch0"])
    (a, eager), (b, inductor) = runs["eager"], runs["inductor"]
    assert inductor.kinds == eager.kinds and "cached" in eager.kinds and "full" in eager.kinds[1:]
    signals = torch.tensor(inductor.signals[1:]), torch.tensor(eager.signals[1:])
    torch.testing.assert_close(*signals, rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_inductor_compiles_the_device_decision_into_one_graph():
    """torch.cond over both continuations, lowered by inductor, decides like the host path in eager."""
    spec = get_tiny_model("flux")
    model = spec.build()
    runs = {}
    for lowering, decision in (("eager", "host"), ("inductor", "device")):
        torch._dynamo.reset()
        backend = c4d_backend("teacache", lowering=lowering, decision=decision, threshold=0.15, num_steps=8)
        runs[decision] = (sample(torch.compile(model, backend=backend), spec, num_steps=8)[0],
                          backend.stats().last.contexts["branch0"].kinds)
    assert runs["device"][1] == runs["host"][1] and "cached" in runs["host"][1]
    torch.testing.assert_close(runs["device"][0], runs["host"][0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("decision", ["host", "device"])
def test_inductor_runs_a_probed_plan_after_a_batch_change(decision):
    """DiT hands its continuations transposed views and Dynamo goes dynamic on the second batch size: every
    compiled variant must take the layouts it is given (the probe's views, the histories, cond's operands)."""
    spec = get_tiny_model("dit")
    model = spec.build()
    backend = c4d_backend("teacache", lowering="inductor", threshold=0.1, decision=decision, num_steps=6)
    compiled = torch.compile(model, backend=backend)
    for batch in (1, 2):
        inputs = spec.make_inputs(batch=batch)
        got, _ = sample(compiled, spec, num_steps=6, inputs=inputs, batch=batch)
        reference = c4d_backend("teacache", lowering="eager", threshold=0.1, num_steps=6)
        want, _ = sample(torch.compile(model, backend=reference), spec, num_steps=6, inputs=inputs, batch=batch)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert backend.stats().last.contexts["branch0"].kinds == reference.stats().last.contexts["branch0"].kinds
    assert backend.stats().cached_steps > 0


def test_inductor_compiles_around_an_opaque_call():
    """A stack split inside its blocks is made whole with one opaque call per block (the routing loop runs
    eagerly inside the compiled graph): inductor gives eager's predictions, cached steps included."""
    from support.routed import build, denoise

    runs = {}
    for lowering in ("eager", "inductor"):
        torch._dynamo.reset()
        backend = c4d_backend("taylorseer", lowering=lowering, num_steps=6)
        compiled = torch.compile(build(), backend=backend)
        runs[lowering] = denoise(compiled, backend=backend), backend
    (eager, eager_backend), (inductor, inductor_backend) = runs["eager"], runs["inductor"]
    assert inductor_backend.stats().opaque_modules == {"Routed": 3}
    assert inductor_backend.stats().last.contexts["branch0"].kinds == eager_backend.stats().last.contexts[
        "branch0"].kinds
    assert inductor_backend.stats().cached_steps > 0
    for a, b in zip(inductor, eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_inductor_serves_a_batch_of_requests_at_a_dynamic_batch_size_like_eager():
    """torch.compile(dynamic=True) hands inductor symbolic scalars: Dynamo's request to trace again must reach
    Dynamo (else the graph ran uncached). Two requests of other step counts share each batch, split when their
    steps need different variants."""
    spec = get_tiny_model("flux")
    batched = ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep")
    runs = {}
    for lowering in ("eager", "inductor"):
        torch._dynamo.reset()
        # the output region: one plan whatever the lowering (the dynamic trace that inductor restarts may analyse
        # a block finer than the eager one's, and a finer plan forecasts other values)
        backend = c4d_backend("taylorseer-lite", lowering=lowering, interval=3)
        compiled = torch.compile(spec.build().eval(), backend=backend, dynamic=True)
        backend.begin_request("a", num_steps=6)
        backend.begin_request("b", num_steps=4)
        inputs = [spec.make_inputs(batch=1, seed=s) for s in (1, 2)]
        outs = []
        with torch.no_grad():
            for step in range(4):
                times = (spec.timesteps(6)[step], spec.timesteps(4)[step])
                parts = [{**i, "timestep": t} for i, t in zip(inputs, times)]
                batch = {k: torch.cat([p[k] for p in parts]) if k in batched else parts[0][k] for k in parts[0]}
                with backend.rows(["a", "b"]):
                    outs.append(compiled(**batch)[0])
        # the FLOPs counted at the examples of a dynamic graph (the per-row forecast weights' symbolic batch)
        runs[lowering] = outs, {k: v.kinds for k, v in backend.stats().last.contexts.items()}, backend.stats()
    (eager, eager_kinds, eager_stats), (inductor, inductor_kinds, inductor_stats) = runs["eager"], runs["inductor"]
    assert inductor_kinds == eager_kinds and eager_kinds["b/cond"] == ["full", "cached", "cached", "full"]
    assert inductor_stats.ideal_speedup == eager_stats.ideal_speedup > 1
    for a, b in zip(inductor, eager):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
