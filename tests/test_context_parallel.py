"""Caching under diffusers' context parallelism (Ulysses all-to-all, ring all-gather), CPU ranks with gloo: a
cached step skips the blocks' collectives on every rank alike, the ranks agree bit for bit, the cache matches
the single-process one, and ranks whose variants would run different collectives are refused, never hung."""

from __future__ import annotations

import pytest
import torch
from support.ranks import run_ranks
from support.sampling import loop

from c4d_compile import c4d_backend
from c4d_compile.calibration import AutoCalibration, calibrate
from c4d_compile.calibration.candidates import Candidate, Effort
from c4d_compile.compiler.passes.check_collectives import collective_sequence
from c4d_compile.policies import Region
from c4d_compile.policies.forecasters import AdamsBashforth, FoCa, LeastSquares
from c4d_compile.zoo.context_parallel import enable_cpu_context_parallel
from c4d_compile.zoo.tiny_diffusers import get_tiny_model

STEPS = 8


def _generations(rank, world, out, runs, model_name="flux", fullgraph=True, mode="ulysses"):
    """Per run (preset, options; None: no c4d), the predictions of an 8-step loop on a tiny model under CP."""
    spec = get_tiny_model(model_name)
    model = spec.build()
    enable_cpu_context_parallel(model, world, mode)
    results = []
    for preset, options in runs:
        torch._dynamo.reset()
        if preset is None:
            results.append({"outs": loop(model, spec, STEPS)})
            continue
        backend = c4d_backend(preset, lowering="eager", num_steps=STEPS, **options)
        outs = loop(torch.compile(model, backend=backend, fullgraph=fullgraph), spec, STEPS)
        variants = backend.rewrite.variants
        blocks = [range(b.start, b.end + 1) for b in backend.analysis.stack.blocks]
        nodes = list(variants["full"].gm.graph.nodes)
        outside = {n.name for i, n in enumerate(nodes) if not any(i in r for r in blocks)}
        cached_collectives = [n.name for n in variants["cached"].gm.graph.nodes if "c10d" in str(n.target)]
        context = backend.stats().last.contexts["branch0"]
        results.append({"outs": outs, "kinds": context.kinds, "signals": context.signals,
                        "ideal": backend.stats().ideal_speedup,
                        "sequences": {k.value: collective_sequence(v.gm) for k, v in variants.items()},
                        "cached_outside": all(name in outside for name in cached_collectives),
                        "placements": {f.placement for f in backend.plan.features}})
    torch.save(results, out / f"rank{rank}.pt")


def _single_process(preset: str, model_name: str = "flux", fullgraph: bool = True, **options):
    """The same policy in one process: its predictions and its backend."""
    spec = get_tiny_model(model_name)
    backend = c4d_backend(preset, lowering="eager", num_steps=STEPS, **options)
    return loop(torch.compile(spec.build(), backend=backend, fullgraph=fullgraph), spec, STEPS), backend


def _auto_schedule(tmp_path) -> AutoCalibration:
    """``policy="auto"`` calibrated in one process (two candidates, a short search), as a user would before
    serving with context parallelism; against these two candidates the fitted weights win (a table of weights
    per step, read from the file on every rank)."""
    spec = get_tiny_model("flux")
    effort = Effort("small", (Candidate(Region.OUTPUT, AdamsBashforth(order=3, binomial=True)),
                              Candidate(Region.BRANCH, FoCa())), searched=0, refined=1, evaluations=4, fitted=2)
    calibration = calibrate(spec.build(), lambda call: torch.stack(loop(call, spec, STEPS)), "auto", budget=4,
                            out=tmp_path / "auto.json", effort=effort, progress=False)
    assert isinstance(calibration.candidate.forecaster, LeastSquares)
    torch._dynamo.reset()
    return calibration


def test_two_ranks_cache_alike_and_like_one_process(tmp_path):
    auto = _auto_schedule(tmp_path)
    runs = [(None, {}), ("taylorseer", {"interval": 1}), ("taylorseer", {}), ("taylorseer-lite", {}),
            ("fbcache", {"threshold": 0.6}), ("speca", {"threshold": 0.5, "warmup": 2}),
            ("fbcache", {"threshold": 0.6, "decision": "device"}), ("auto", {"schedule": str(auto.path)})]
    ranks = run_ranks(_generations, 2, tmp_path, runs)
    (plain, every, cached, lite, *signal_driven, device, chosen), other = ranks[0], ranks[1]
    assert all(torch.equal(a, b) for a, b in zip(every["outs"], plain["outs"]))  # interval 1: bit-exact with CP
    for mine, theirs in zip(ranks[0], other):  # every rank holds the gathered output, bit for bit the same
        assert all(torch.equal(a, b) for a, b in zip(mine["outs"], theirs["outs"]))
    assert "cached" in cached["kinds"]

    single, backend = _single_process("taylorseer")  # the same policy in one process
    assert backend.stats().last.contexts["branch0"].kinds == cached["kinds"]
    for a, b in zip(cached["outs"], single):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

    full, skipped = cached["sequences"]["full"], cached["sequences"]["cached"]
    assert len(full) > 8 and any("all_to_all" in c for c in full)  # Ulysses exchanges tokens in every block
    assert skipped and not any("all_to_all" in c for c in skipped)  # a cached step skips them on every rank
    assert cached["cached_outside"]  # what stays is outside the blocks: the gather of the output
    assert cached["ideal"] == pytest.approx(backend.stats().ideal_speedup, rel=0.1)
    # the plan says where each rank's cache sits: branch features before the output's gather (its shard of the
    # tokens), the output after it (whole on every rank)
    assert cached["placements"] == {"shard"} and lite["placements"] == {"gathered"}

    # the device path adds the sums over the ranks inside its graph: the decisions of the host path, on every rank
    assert device["kinds"] == other[-2]["kinds"] == signal_driven[0]["kinds"]
    assert any("all_reduce" in c for c in device["sequences"]["decide"])
    for a, b in zip(device["outs"], signal_driven[0]["outs"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(signal_driven, other[4:-2]):  # each rank measures its shard; the sums are added first
        assert mine["kinds"] == theirs["kinds"] and mine["signals"] == theirs["signals"]
        assert len(set(mine["kinds"])) > 1, mine["signals"]  # the signal makes decisions either way
    torch._dynamo.reset()  # summed over the ranks, the signal is the one of all the tokens: one process's
    _, backend = _single_process("fbcache", threshold=0.6)
    single = backend.stats().last.contexts["branch0"]
    assert single.kinds == signal_driven[0]["kinds"]
    torch.testing.assert_close(torch.tensor(single.signals[1:]), torch.tensor(signal_driven[0]["signals"][1:]),
                               rtol=1e-5, atol=0)

    # what auto chose in one process runs under context parallelism unchanged: its full steps, as one process runs it
    torch._dynamo.reset()
    single, backend = _single_process("auto", schedule=str(auto.path))
    computed = [i for i, kind in enumerate(chosen["kinds"]) if kind == "full"]
    assert computed == list(auto.full_steps) and len(computed) < STEPS
    assert chosen["kinds"] == backend.stats().last.contexts["branch0"].kinds
    for a, b in zip(chosen["outs"], single):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_wan_shards_its_tokens_in_the_first_block_and_caches_like_one_process(tmp_path):
    # Wan's plan splits the tokens in a pre-forward hook of blocks.0; on the tiny config that hook also logs a
    # warning about the rotary embedding's dimensions, which Dynamo cannot trace: a graph break, so no fullgraph
    ranks = run_ranks(_generations, 2, tmp_path, [(None, {}), ("taylorseer", {})], "wan", False)
    (plain, cached), other = ranks
    assert all(torch.equal(a, b) for a, b in zip(cached["outs"], other[1]["outs"]))
    single, backend = _single_process("taylorseer", "wan", fullgraph=False)
    assert backend.stats().last.contexts["branch0"].kinds == cached["kinds"] and "cached" in cached["kinds"]
    for a, b in zip(cached["outs"], single):  # the split left out of the block: its residual pairs again
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not any("all_to_all" in c for c in cached["sequences"]["cached"])


def test_ring_attention_caches_alike_on_every_rank_and_like_one_process(tmp_path):
    # ring attention gathers every rank's keys and values in each block and merges the partial attentions by
    # their log-sum-exp (on CPU through torch's flash kernel, see zoo.context_parallel)
    runs = [(None, {}), ("taylorseer", {"interval": 1}), ("taylorseer", {})]
    ranks = run_ranks(_generations, 2, tmp_path, runs, "flux", True, "ring")
    (plain, every, cached), other = ranks
    assert all(torch.equal(a, b) for a, b in zip(every["outs"], plain["outs"]))
    for mine, theirs in zip(ranks[0], other):
        assert all(torch.equal(a, b) for a, b in zip(mine["outs"], theirs["outs"]))
    single, backend = _single_process("taylorseer")
    assert backend.stats().last.contexts["branch0"].kinds == cached["kinds"] and "cached" in cached["kinds"]
    for a, b in zip(cached["outs"], single):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    gathers = [c for c in cached["sequences"]["full"] if "all_gather" in c]
    assert len(gathers) > 4  # one per attention, and the output's
    assert cached["sequences"]["cached"] == ("all_gather_into_tensor(0)", "wait_tensor()")  # the output's only
    assert cached["cached_outside"]
    assert cached["ideal"] == pytest.approx(backend.stats().ideal_speedup, rel=0.1)


def _mismatched(rank, world, out, policies):
    """Each rank its own policy: other variants, or the same variants on other steps."""
    spec = get_tiny_model("flux")
    model = spec.build()
    enable_cpu_context_parallel(model, world)
    preset, options = policies[rank]
    backend = c4d_backend(preset, lowering="eager", num_steps=4, **options)
    try:
        loop(torch.compile(model, backend=backend, fullgraph=True), spec, 4)
        error = None
    except Exception as err:  # Dynamo wraps what a backend raises
        error = str(getattr(err, "inner_exception", err))
    torch.save({"error": error}, out / f"rank{rank}.pt")


@pytest.mark.parametrize("policies,says", [
    ((("taylorseer", {}), ("taylorseer-lite", {})), "ranks [1] other collectives"),  # branches vs the output
    ((("taylorseer", {"interval": 2}), ("taylorseer", {"interval": 3})), "ranks [1] run another policy"),
])
def test_ranks_that_would_skip_different_collectives_are_refused_not_hung(tmp_path, policies, says):
    ranks = run_ranks(_mismatched, 2, tmp_path, policies, timeout=120)
    for result in ranks:
        assert result["error"] is not None and "would run different collectives" in result["error"]
        assert says in result["error"]


def test_four_ranks_cache_alike_and_like_one_process(tmp_path):
    # ring: Ulysses splits the heads over the ranks, and the tiny Flux has 2
    ranks = run_ranks(_generations, 4, tmp_path, [(None, {}), ("taylorseer", {})], "flux", True, "ring")
    for plain, cached in ranks:  # every rank alike, with c4d and without
        assert all(torch.equal(a, b) for a, b in zip(plain["outs"], ranks[0][0]["outs"]))
        assert all(torch.equal(a, b) for a, b in zip(cached["outs"], ranks[0][1]["outs"]))
        assert cached["sequences"] == ranks[0][1]["sequences"]
    single, backend = _single_process("taylorseer")
    assert ranks[0][1]["kinds"] == backend.stats().last.contexts["branch0"].kinds
    for a, b in zip(ranks[0][1]["outs"], single):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert ranks[0][1]["sequences"]["cached"] == ("all_gather_into_tensor(0)", "wait_tensor()")
