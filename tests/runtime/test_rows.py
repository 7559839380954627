"""Batches of requests (``backend.rows``): each row decided, forecast and stored as its request alone would be,
over batches whose composition changes every step — against each request run by itself through the ordinary
single-generation API; what a batch of requests refuses, and that ending requests frees their state."""

from __future__ import annotations

import pytest
import torch

from c4d_compile import ConfigError, c4d_backend
from c4d_compile.errors import InvalidValueError
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

BATCHED = ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep")  # the tiny Flux's batch inputs
# request -> (steps, loop step it joins at, guidance contexts); c runs cond and uncond as two rows of each batch
REQUESTS = {"a": (6, 0, ("cond",)), "b": (4, 1, ("cond",)), "c": (5, 2, ("cond", "uncond"))}


@pytest.fixture(scope="module")
def flux():
    return get_tiny_model("flux")


def _inputs(spec, rid: str, context: str) -> dict:
    inputs = spec.make_inputs(batch=1, seed=ord(rid))
    if context == "uncond":
        inputs["encoder_hidden_states"] = torch.zeros_like(inputs["encoder_hidden_states"])
    return inputs


def _served(spec, policy: str) -> tuple[dict, object, int]:
    """Every request through one compiled model, its rows batched with whatever else is active at each step."""
    backend = c4d_backend(policy, lowering="eager")
    compiled = torch.compile(spec.build().eval(), backend=backend, dynamic=True)
    latents = {(r, c): _inputs(spec, r, c)["hidden_states"] for r, (_, _, cs) in REQUESTS.items() for c in cs}
    outputs: dict = {key: [] for key in latents}
    for loop_step in range(7):  # the last request ends after step 6
        rows = []
        for rid, (steps, start, contexts) in REQUESTS.items():
            if loop_step == start:
                backend.begin_request(rid, num_steps=steps)
            if start <= loop_step < start + steps:
                rows += [(rid, c) for c in contexts]
            elif loop_step == start + steps:
                backend.end_request(rid)
        parts = []
        for rid, context in rows:
            steps, start, _ = REQUESTS[rid]
            t = spec.timesteps(steps)[loop_step - start]
            parts.append({**_inputs(spec, rid, context), "hidden_states": latents[(rid, context)], "timestep": t})
        batch = {k: torch.cat([p[k] for p in parts]) if k in BATCHED else parts[0][k] for k in parts[0]}
        with torch.no_grad(), backend.rows(rows):
            (out,) = compiled(**batch)
        for i, key in enumerate(rows):
            outputs[key].append(out[i: i + 1])
            latents[key] = latents[key] - 0.05 * out[i: i + 1]
    live = backend.session.requests.state_bytes
    for rid in list(backend.session.requests.active):
        backend.end_request(rid)
    return outputs, backend, live


def _alone(spec, policy: str, rid: str, context: str) -> tuple[list, list]:
    """The request run by itself: the ordinary API, its own backend, batch one."""
    steps, _, contexts = REQUESTS[rid]
    backend = c4d_backend(policy, lowering="eager", num_steps=steps)
    compiled = torch.compile(spec.build().eval(), backend=backend, dynamic=True)
    latents = {c: _inputs(spec, rid, c)["hidden_states"] for c in contexts}
    outputs = []
    with torch.no_grad():
        for t in spec.timesteps(steps):
            for c in contexts:
                with backend.cache_context(c):
                    (out,) = compiled(**{**_inputs(spec, rid, c), "hidden_states": latents[c], "timestep": t})
                latents[c] = latents[c] - 0.05 * out
                if c == context:
                    outputs.append(out)
    return outputs, backend.stats().last.contexts[context].kinds


@pytest.mark.parametrize("policy", ["taylorseer"])  # branch forecasts (the output region: test_inductor.py)
def test_every_row_is_its_request_alone(flux, policy):
    served, backend, live = _served(flux, policy)
    kinds = backend.stats().last.contexts
    for (rid, context), outs in served.items():
        alone, alone_kinds = _alone(flux, policy, rid, context)
        assert kinds[f"{rid}/{context}"].kinds == alone_kinds and "cached" in alone_kinds
        assert len(outs) == len(alone)
        for got, want in zip(outs, alone):  # another batch size may round the last bits otherwise
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert live > 0 and backend.session.requests.state_bytes == 0  # held while running, freed when ended
    assert backend._graphs <= 2  # batches of 1, 2, 3 and 4 rows: batch one specialised, the rest one dynamic graph


def test_a_batch_of_requests_refuses_what_it_cannot_serve(flux):
    backend = c4d_backend("taylorseer", lowering="eager")
    compiled = torch.compile(flux.build().eval(), backend=backend, dynamic=True)
    backend.begin_request("a", num_steps=1)
    two = {k: torch.cat([v, v]) if k in BATCHED else v for k, v in flux.make_inputs(batch=1).items()}
    with pytest.raises(InvalidValueError, match="active request"):
        with backend.rows(["a", "nobody"]):
            pass
    with torch.no_grad():
        with pytest.raises(InvalidValueError, match="one request .* per row"), backend.rows(["a"]):
            compiled(**two)
        with backend.rows(["a", ("a", "uncond")]):
            compiled(**two)  # one step in each context
        with pytest.raises(ConfigError, match="made its 1 step"), backend.rows(["a", ("a", "uncond")]):
            compiled(**two)
    backend.end_request("a")
    with pytest.raises(InvalidValueError, match="active request"):
        backend.end_request("a")


def test_a_signal_preset_and_a_static_graph_that_must_split_its_batch_are_refused(flux):
    inputs = flux.make_inputs(batch=2)
    backend = c4d_backend("fbcache", lowering="eager")
    compiled = torch.compile(flux.build().eval(), backend=backend, dynamic=True)
    for rid in "ab":
        backend.begin_request(rid, num_steps=4)
    with torch.no_grad(), pytest.raises(ConfigError, match="signal"), backend.rows(["a", "b"]):
        compiled(**inputs)

    backend = c4d_backend("taylorseer", lowering="eager")
    compiled = torch.compile(flux.build().eval(), backend=backend)  # the batch size of 2 is written in
    for rid in "abc":
        backend.begin_request(rid, num_steps=4)
    with torch.no_grad():
        with backend.rows(["a", "b"]):
            compiled(**inputs)  # both at their first step: one variant for the whole batch, nothing to split
        with pytest.raises(ConfigError, match="dynamic=True"), backend.rows(["a", "c"]):
            compiled(**inputs)  # a forecasts its second step, c computes its first
    assert backend.session.requests.get("c").steps == {}  # a refused call takes no step


def test_random_compositions_compute_each_row_once_with_its_variant_and_never_recompile(flux, monkeypatch):
    import random

    from c4d_compile.runtime import rows as rows_module

    computed: list[tuple[str, int]] = []  # per sub-batch: its variant and how many rows it computed
    group = rows_module._run_group

    def counted(runtime, args, members, *rest):
        computed.append((rest[2].value, len(members)))
        return group(runtime, args, members, *rest)

    monkeypatch.setattr(rows_module, "_run_group", counted)
    backend = c4d_backend("taylorseer", lowering="eager")
    compiled = torch.compile(flux.build().eval(), backend=backend, dynamic=True)
    base = flux.make_inputs(batch=1)
    draw, active, begun, served = random.Random(0), {}, 0, 0
    with torch.no_grad():
        for _ in range(100):
            # requests arrive as others finish; at most 3 rows, as 4 is a size of the tiny Flux's own inputs, which
            # Dynamo's duck sizing would tie the batch to if the first batch had it
            while len(active) < 3:
                begun += 1
                active[begun] = draw.randint(3, 6)
                backend.begin_request(begun, num_steps=active[begun])
            chosen = sorted(draw.sample(sorted(active), draw.randint(1, len(active))))  # some wait a step
            batch = {k: v.repeat(len(chosen), *[1] * (v.dim() - 1)) if k in BATCHED else v for k, v in base.items()}
            with backend.rows(chosen):
                compiled(**batch)
            served += len(chosen)
            for rid in chosen:
                if backend.session.requests.get(rid).steps["cond"] == active[rid]:
                    backend.end_request(rid)
                    del active[rid]
    assert backend._graphs <= 2  # a hundred compositions of 1 to 3 rows: batch one specialised, one dynamic
    kinds = [k for ctx in backend.stats().last.contexts.values() for k in ctx.kinds]
    assert len(kinds) == served == sum(n for _, n in computed)  # every row computed once, in one sub-batch
    for kind in ("full", "cached"):  # with the variant its own decision named
        assert sum(n for k, n in computed if k == kind) == kinds.count(kind) > 0
