"""Batches of requests (``backend.rows``): each row decided, forecast and stored as its request alone would be,
over batches whose composition changes every step — against each request run by itself (its rows one at a time,
and on Flux through the ordinary single-generation API); what a batch of requests refuses, and that ending
requests frees their state."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from c4d_compile import ConfigError, c4d_backend
from c4d_compile.errors import InvalidValueError
from c4d_compile.runtime import rows as rows_module
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

# request -> (steps, loop step it joins at, guidance contexts); c runs cond and uncond as two rows of each batch
REQUESTS = {"a": (6, 0, ("cond",)), "b": (4, 1, ("cond",)), "c": (5, 2, ("cond", "uncond"))}
# a branch forecaster, an output forecaster and a signal preset; teacache's threshold set where the random tiny
# models skip some steps and compute others
SERVED = {"taylorseer": {}, "taylorseer-lite": {}, "teacache": {"threshold": 0.6}}


@pytest.fixture(scope="module")
def flux():
    return get_tiny_model("flux")


def _inputs(spec, rid: str, context: str) -> dict:
    inputs = spec.make_inputs(batch=1, seed=ord(rid))
    if context == "uncond":
        inputs["encoder_hidden_states"] = torch.zeros_like(inputs["encoder_hidden_states"])
    return inputs


def _batched_keys(spec) -> set[str]:
    one, two = spec.make_inputs(batch=1), spec.make_inputs(batch=2)
    return {k for k, v in two.items() if isinstance(v, torch.Tensor) and v.shape[:1] != one[k].shape[:1]}


def _loop(spec, backend, compiled, requests: dict, prefix: str = "") -> dict:
    """A serving loop: requests join and leave; each loop step is one batch of every active request's rows."""
    batched = _batched_keys(spec)
    latents = {(r, c): _inputs(spec, r, c)[spec.latent_key] for r, (_, _, cs) in requests.items() for c in cs}
    outputs: dict = {key: [] for key in latents}
    for loop_step in range(max(start + steps for steps, start, _ in requests.values()) + 1):
        rows = []
        for rid, (steps, start, contexts) in requests.items():
            if loop_step == start:
                backend.begin_request(prefix + rid, num_steps=steps)
            if start <= loop_step < start + steps:
                rows += [(rid, c) for c in contexts]
            elif loop_step == start + steps:
                backend.end_request(prefix + rid)
        if not rows:
            continue
        parts = []
        for rid, context in rows:
            steps, start, _ = requests[rid]
            t = spec.timesteps(steps)[loop_step - start]
            parts.append({**_inputs(spec, rid, context), spec.latent_key: latents[(rid, context)],
                          spec.timestep_key: t})
        batch = {k: torch.cat([p[k] for p in parts]) if k in batched else parts[0][k] for k in parts[0]}
        with torch.no_grad(), backend.rows([(prefix + rid, c) for rid, c in rows]):
            (out,) = compiled(**batch)
        for i, key in enumerate(rows):
            outputs[key].append(out[i: i + 1])
            latents[key] = latents[key] - 0.05 * out[i: i + 1]
    return outputs


def _ordinary(spec, policy: str, rid: str) -> tuple[dict, dict]:
    """The request run by the ordinary single-generation API: its own backend, batch one, a cache context each."""
    steps, _, contexts = REQUESTS[rid]
    backend = c4d_backend(policy, lowering="eager", num_steps=steps, **SERVED[policy])
    compiled = torch.compile(spec.build().eval(), backend=backend, dynamic=True)
    latents = {c: _inputs(spec, rid, c)[spec.latent_key] for c in contexts}
    outputs: dict = {c: [] for c in contexts}
    with torch.no_grad():
        for t in spec.timesteps(steps):
            for c in contexts:
                with backend.cache_context(c):
                    (out,) = compiled(**{**_inputs(spec, rid, c), spec.latent_key: latents[c], spec.timestep_key: t})
                latents[c] = latents[c] - 0.05 * out
                outputs[c].append(out)
    return outputs, {c: backend.stats().last.contexts[c].kinds for c in contexts}


@pytest.mark.parametrize("model", ["flux", "wan", "sd3"])
@pytest.mark.parametrize("policy", list(SERVED))
def test_rows_of_mixed_requests_equal_each_request_served_alone(model, policy):
    """Requests of different step counts, join times and guidance contexts batched together, against each request
    run alone (its rows one at a time) through the same compiled model; on Flux, request c (two contexts) also
    against the ordinary API."""
    spec = get_tiny_model(model)
    backend = c4d_backend(policy, lowering="eager", **SERVED[policy])
    compiled = torch.compile(spec.build().eval(), backend=backend, dynamic=True)
    served = _loop(spec, backend, compiled, REQUESTS)
    live = backend.session.requests.state_bytes
    for rid, (steps, _, contexts) in REQUESTS.items():
        for context in contexts:
            alone = _loop(spec, backend, compiled, {rid: (steps, 0, (context,))}, prefix="alone-")
            for got, want in zip(served[(rid, context)], alone[(rid, context)], strict=True):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)  # other batch sizes round otherwise
    kinds = {k: v.kinds for k, v in backend.stats().last.contexts.items()}
    for label in [k for k in kinds if not k.startswith("alone-")]:
        assert kinds[label] == kinds["alone-" + label]
    assert {"full", "cached"} <= {k for ks in kinds.values() for k in ks}
    assert backend._graphs <= 2  # batches of 1 to 4 rows: batch one specialised, the rest one dynamic graph
    assert live == 0 and backend.session.requests.state_bytes == 0  # every request ended, its state freed
    if model == "flux":
        ordinary, ordinary_kinds = _ordinary(spec, policy, "c")
        for context, outs in ordinary.items():
            assert kinds[f"c/{context}"] == ordinary_kinds[context]
            for got, want in zip(served[("c", context)], outs, strict=True):
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_requests_hold_state_while_active_and_a_batch_refuses_what_does_not_match(flux):
    backend = c4d_backend("taylorseer", lowering="eager")
    compiled = torch.compile(flux.build().eval(), backend=backend, dynamic=True)
    backend.begin_request("a", num_steps=2)
    one = flux.make_inputs(batch=1)
    two = {k: torch.cat([v, v]) if k in _batched_keys(flux) else v for k, v in one.items()}
    with pytest.raises(InvalidValueError, match="active request"):
        with backend.rows(["a", "nobody"]):
            pass
    with torch.no_grad():
        with pytest.raises(InvalidValueError, match="one request .* per row"), backend.rows(["a"]):
            compiled(**two)
        with pytest.raises(InvalidValueError, match="once per batch"), backend.rows(["a", "a"]):
            compiled(**two)
        with backend.rows(["a", ("a", "uncond")]):
            compiled(**two)  # one step in each context
        assert backend.session.requests.state_bytes > 0
        with backend.rows(["a", ("a", "uncond")]):
            compiled(**two)
        with pytest.raises(ConfigError, match="made its 2 step"), backend.rows(["a", ("a", "uncond")]):
            compiled(**two)
    backend.end_request("a")
    assert backend.session.requests.state_bytes == 0
    with pytest.raises(InvalidValueError, match="active request"):
        backend.end_request("a")
    with pytest.raises(InvalidValueError, match="num_steps"):
        backend.begin_request("b", num_steps=0)
    with pytest.raises(InvalidValueError, match="num_steps"):
        backend.begin_request("b", num_steps=3, timesteps=[1.0, 0.5])
    backend.begin_request("b", timesteps=[1.0, 0.5])
    assert backend.session.requests.get("b").num_steps == 2


def _runtime(**plan) -> SimpleNamespace:
    """What ``check_rows_supported`` reads of a Runtime."""
    defaults = {"decided_on_device": False, "tokens": None, "signal": None}
    return SimpleNamespace(plan=SimpleNamespace(**{**defaults, **plan}), signature=SimpleNamespace(carried=False),
                           policy=SimpleNamespace(name="p"))


def test_what_stays_one_decision_per_batch_is_refused():
    rows_module.check_rows_supported(_runtime())  # a step-decided plan
    rows_module.check_rows_supported(_runtime(signal=SimpleNamespace(per_row=True)))
    for plan, match in (({"decided_on_device": True}, "decision='host'"), ({"tokens": object()}, "token rows"),
                        ({"signal": SimpleNamespace(per_row=False)}, "whole batch")):
        with pytest.raises(ConfigError, match=match):
            rows_module.check_rows_supported(_runtime(**plan))


def test_a_static_graph_serves_a_batch_that_needs_one_variant_and_refuses_one_that_must_split(flux):
    inputs = flux.make_inputs(batch=2)
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


def test_rows_forecasting_at_different_distances_from_their_full_steps_share_one_sub_batch(flux, monkeypatch):
    """The forecast weights are an input per row: rows whose requests joined at different steps (so their weights
    differ) run CACHED as one sub-batch, each with its own weights, each equal to its request served alone."""
    groups: list[tuple] = []  # per sub-batch: the batched call's arguments (kept: one object per call), its variant
    group = rows_module._run_group  # and its rows' weights

    def logged(runtime, args, members, batch, rows, kind, *rest):
        groups.append((args, kind.value, [d.call.weights if d.call is not None else None for d in rows]))
        return group(runtime, args, members, batch, rows, kind, *rest)

    monkeypatch.setattr(rows_module, "_run_group", logged)
    backend = c4d_backend("taylorseer", lowering="eager", num_steps=8, full_steps=(0, 1, 4, 7))
    compiled = torch.compile(flux.build().eval(), backend=backend, dynamic=True)
    requests = {"a": (8, 0, ("cond",)), "b": (8, 1, ("cond",)), "c": (8, 2, ("cond",))}
    served = _loop(flux, backend, compiled, requests)
    assert any(kind == "cached" and len(set(weights)) > 1 for _, kind, weights in groups)  # the case tested
    calls: dict[int, list[str]] = {}
    for args, kind, _ in groups:
        calls.setdefault(id(args), []).append(kind)
    assert all(len(kinds) == len(set(kinds)) for kinds in calls.values())  # one sub-batch per variant in a call
    for rid, (steps, _, contexts) in requests.items():
        alone = _loop(flux, backend, compiled, {rid: (steps, 0, contexts)}, prefix="alone-")
        for got, want in zip(served[(rid, "cond")], alone[(rid, "cond")], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_row_computed_in_a_sub_batch_of_its_solo_shape_is_bit_exact(flux):
    """Two requests of two guidance rows each, one step apart on a schedule that computes every other step: at every
    call one request's rows go through FULL and the other's through CACHED, each a sub-batch of two rows — the shape
    each request's own calls have alone — so the eager lowering gives the same bits."""
    backend = c4d_backend("taylorseer", lowering="eager", num_steps=6, full_steps=(0, 2, 4))
    compiled = torch.compile(flux.build().eval(), backend=backend, dynamic=True)
    requests = {"a": (6, 0, ("cond", "uncond")), "b": (6, 1, ("cond", "uncond"))}
    served = _loop(flux, backend, compiled, requests)
    for rid, (steps, _, contexts) in requests.items():
        alone = _loop(flux, backend, compiled, {rid: (steps, 0, contexts)}, prefix="alone-")
        for context in contexts:
            for got, want in zip(served[(rid, context)], alone[(rid, context)], strict=True):
                assert torch.equal(got, want)
    kinds = backend.stats().last.contexts
    assert kinds["a/cond"].kinds == kinds["b/cond"].kinds == ["full", "cached"] * 3


def test_random_compositions_compute_each_row_once_with_its_variant_and_never_recompile(flux, monkeypatch):
    computed: list[tuple[str, int]] = []  # per sub-batch: its variant and how many rows it computed
    group = rows_module._run_group

    def counted(runtime, args, members, *rest):
        computed.append((rest[2].value, len(members)))
        return group(runtime, args, members, *rest)

    monkeypatch.setattr(rows_module, "_run_group", counted)
    backend = c4d_backend("teacache", lowering="eager", threshold=0.6)
    compiled = torch.compile(flux.build().eval(), backend=backend, dynamic=True)
    base = flux.make_inputs(batch=1)
    batched = _batched_keys(flux)
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
            batch = {k: v.repeat(len(chosen), *[1] * (v.dim() - 1)) if k in batched else v for k, v in base.items()}
            batch[flux.timestep_key] = torch.cat([flux.timesteps(active[r])[backend.session.requests.get(r).steps.get(
                "cond", 0)] for r in chosen])
            with backend.rows(chosen):
                compiled(**batch)
            served += len(chosen)
            for rid in chosen:
                if backend.session.requests.get(rid).steps["cond"] == active[rid]:
                    backend.end_request(rid)
                    del active[rid]
    assert backend._graphs <= 2  # a hundred compositions of 1 to 3 rows: batch one specialised, one dynamic
    stats = backend.stats().last
    kinds = [k for ctx in stats.contexts.values() for k in ctx.kinds]
    probed = sum(n for k, n in computed if k == "probe")
    # every row computed once, in one sub-batch, with the variant its own decision named, after the probe (FULL and
    # CACHED continue from its values), which measured each row's signal
    assert len(kinds) == served == sum(n for k, n in computed if k != "probe") == probed
    for kind in ("full", "cached"):
        assert sum(n for k, n in computed if k == kind) == kinds.count(kind) > 0
    assert sum(len(ctx.signals) for ctx in stats.contexts.values()) == served


def test_a_request_takes_its_own_options_where_they_keep_the_compiled_graphs(flux):
    """Two requests batched together, one with its own threshold: each decided by its own rule, each equal to the
    same request served alone; options that would change the graphs are refused when the request begins."""
    backend = c4d_backend("teacache", lowering="eager", threshold=0.6)
    compiled = torch.compile(flux.build().eval(), backend=backend, dynamic=True)
    batched = _batched_keys(flux)
    grid = flux.timesteps(5)

    def run(requests: dict[str, dict]) -> dict:
        for rid, options in requests.items():
            backend.begin_request(rid, num_steps=5, **options)
        latents = {rid: _inputs(flux, "a", "cond")[flux.latent_key] for rid in requests}
        outs: dict = {rid: [] for rid in requests}
        for t in grid:
            parts = [{**_inputs(flux, "a", "cond"), flux.latent_key: latents[rid], flux.timestep_key: t}
                     for rid in requests]
            batch = {k: torch.cat([p[k] for p in parts]) if k in batched else parts[0][k] for k in parts[0]}
            with torch.no_grad(), backend.rows(list(requests)):
                (out,) = compiled(**batch)
            for i, rid in enumerate(requests):
                outs[rid].append(out[i: i + 1])
                latents[rid] = latents[rid] - 0.05 * out[i: i + 1]
        for rid in requests:
            backend.end_request(rid)
        return outs

    together = run({"exact": {"threshold": 0.0}, "cached": {}})
    alone = {**run({"exact-alone": {"threshold": 0.0}}), **run({"cached-alone": {}})}
    kinds = {k: v.kinds for k, v in backend.stats().last.contexts.items()}
    assert kinds["exact/cond"] == kinds["exact-alone/cond"] == ["full"] * 5
    assert kinds["cached/cond"] == kinds["cached-alone/cond"] and "cached" in kinds["cached/cond"]
    for rid in ("exact", "cached"):
        for got, want in zip(together[rid], alone[f"{rid}-alone"], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for options, match in (({"region": "output"}, "region"), ({"first_blocks": 2}, "compiled part"),
                           ({"decision": "device"}, "compiled part")):
        with pytest.raises(ConfigError, match=match):
            backend.begin_request("refused", num_steps=5, **options)
    with pytest.raises(ConfigError, match="unknown policy option"):
        backend.begin_request("refused", num_steps=5, thershold=0.1)
    assert "refused" not in backend.session.requests.active
