"""Shapes under the cache, through ``enable_cache`` on tiny real pipelines; and what calibrated files do at another
step count, sampler grid or size.

Sweeps of 6 sizes each: image resolutions on Flux (and back to the first), video lengths on Wan 2.1 (``num_frames``:
2 to 7 latent frames), batch sizes on Flux (``num_images_per_prompt`` 1 to 6). Dynamo compiles the first size as a
static graph and the second as a dynamic one that serves every later size: 2 graphs per sweep, none after a size's
first step (counted after every step through the pipeline's ``callback_on_step_end``). At every size the default
preset caches with the last step full; ``interval=1`` is the uncompiled pipeline bit for bit at a size of each graph;
a generation at one size after another equals the same generation after ``backend.reset()``.

Calibrated files (``docs/stacks.md``): a calibrated schedule runs only on the run it was recorded on (step count,
sampler grid, cached feature shapes; batch size excluded) and refuses any other with a ``CalibrationFileError``
naming both values, also at a size a dynamic-shape graph serves without compiling again; MagCache's ratios are
resampled to the run's grid by timestep (any step count, shift or size) and refuse a run reaching timesteps the
recorded one never came near (``RatiosTransferError``).
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"), pytest.mark.usefixtures("one_thread")]

from support.pipelines import PIPELINES  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

from c4d_compile import C4DWarning, CalibrationFileError, RatiosTransferError, calibrate, enable_cache  # noqa: E402

FLUX, WAN = PIPELINES["flux"], PIPELINES["wan2.1"]
# 64 px = 16 image tokens; 32 x 64 px = 8, as many as the text: a size c4d's stream analysis once guarded on
# (``s0 != 8``), which compiled a third graph there
RESOLUTIONS = [{"height": h, "width": w} for h, w in ((64, 64), (128, 64), (64, 128), (96, 96), (128, 128), (32, 64))]
SWEEPS = {
    "resolution": (FLUX, [*RESOLUTIONS, RESOLUTIONS[0]]),  # and back to the first
    "frames": (WAN, [{"num_frames": n} for n in (5, 9, 13, 17, 21, 25)]),  # 2 .. 7 latent frames
    "batch": (FLUX, [{"num_images_per_prompt": n} for n in range(1, 7)]),
}
STEPS = 4


def generate(pipe, case, backend=None, steps: int = STEPS, seed: int = 0, **size) -> tuple[torch.Tensor, list[int]]:
    """The pipeline's final latents at ``size``, and the graphs compiled so far after each of its steps."""
    graphs: list[int] = []

    def after_step(pipe, i, t, tensors):
        graphs.append(len(backend.runtimes) if backend is not None else 0)
        return {}

    with torch.no_grad():
        out = pipe(**{**case.call_kwargs(steps=steps, seed=seed), **size}, callback_on_step_end=after_step)[0]
    return out, graphs


@pytest.mark.parametrize("sweep", sorted(SWEEPS))
def test_a_sweep_of_six_sizes_compiles_two_graphs_none_per_step_caches_at_each_and_is_exact_at_interval_one(sweep):
    case, sizes = SWEEPS[sweep]
    pipe, reference = case.build(), case.build()
    counters.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = enable_cache(pipe, "taylorseer", lowering="eager")
        graphs = []
        for size in sizes:
            _, per_step = generate(pipe, case, backend, **size)
            assert len(per_step) == STEPS and len(set(per_step)) == 1, (size, per_step)  # none after the first step
            graphs.append(per_step[-1])
            contexts = backend.stats().last.contexts
            assert len(contexts) == (2 if case is WAN else 1), contexts  # cond and uncond for Wan
            for name, ctx in contexts.items():
                assert ctx.steps == STEPS and ctx.cached_steps >= 1 and ctx.computed[-1] == STEPS - 1, (size, name, ctx)
    assert not [w for w in caught if issubclass(w.category, C4DWarning)]
    assert graphs == [1] + [2] * (len(sizes) - 1)  # static at the first size, then one dynamic graph for the rest
    assert counters["stats"]["unique_graphs"] == 2
    # a generation at one size after another (both on the dynamic graph) reuses nothing of the other
    after = generate(pipe, case, backend, seed=1, **sizes[2])[0]
    backend.reset()
    assert torch.equal(after, generate(pipe, case, backend, seed=1, **sizes[2])[0])
    # every step full on the same two graphs (retarget recompiles nothing): the uncompiled pipeline bit for bit
    backend.retarget(interval=1)
    for size in sizes:
        got = generate(pipe, case, backend, steps=2, **size)[0]
        assert torch.equal(got, generate(reference, case, steps=2, **size)[0]), size
        assert all(ctx.computed == [0, 1] for ctx in backend.stats().last.contexts.values()), size
    assert len(backend.runtimes) == 2 and backend.stats().uncached_calls == 0


# ------------------------------------------------------------------------------------------------------------------
# Calibrated files at another step count, sampler grid or size (recorded on the Flux pipeline: 64 px, 6 steps).

CALIBRATED_STEPS = 6


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A calibrated schedule (taylorseer, 3 of 6 steps) and MagCache's ratios, both recorded at 64 px."""
    folder = tmp_path_factory.mktemp("shapes")
    pipe = FLUX.build()
    record = lambda p: generate(p, FLUX, steps=CALIBRATED_STEPS, seed=1)[0]  # noqa: E731
    schedule = calibrate(pipe, record, "taylorseer", budget=3, out=folder / "ts.json")
    ratios = calibrate(pipe, record, "magcache", out=folder / "mag.json")
    return schedule, ratios


def refusal(call, error=CalibrationFileError) -> str:
    """The message of the typed error ``call`` raises (also when Dynamo wraps one raised while compiling)."""
    with pytest.raises(Exception) as raised:
        call()
    inner = getattr(raised.value, "inner_exception", raised.value)
    assert isinstance(inner, error), repr(inner)
    return str(inner)


def test_calibrated_files_record_the_sampler_grid_and_the_feature_shapes(files):
    schedule, ratios = files
    for path in (schedule.path, ratios.path):
        data = json.loads(path.read_text())
        assert len(data["sampler_timesteps"]) == CALIBRATED_STEPS and data["sampler_timesteps"][0] == 1000.0
        assert data["fingerprint"]["features"][0][1] == [16, 32]  # 16 image tokens of width 32, batch left out


def test_a_calibrated_schedule_runs_at_any_batch_size_and_refuses_another_step_count_grid_or_size(files):
    schedule, _ = files
    pipe = FLUX.build()
    backend = enable_cache(pipe, "taylorseer", lowering="eager", schedule=str(schedule.path))
    for batch in (1, 2):  # its own run, and another batch size (left out of the fingerprint)
        generate(pipe, FLUX, backend, steps=CALIBRATED_STEPS, num_images_per_prompt=batch)
        assert backend.stats().last.contexts["cond"].computed == list(schedule.full_steps)
    message = refusal(lambda: generate(pipe, FLUX, backend, steps=8))
    assert "calibrated for 6 steps" in message and "runs 8" in message and "budget=3" in message
    sigmas = [1.0 - 0.15 * i for i in range(CALIBRATED_STEPS)]  # the same step count on another grid
    message = refusal(lambda: generate(pipe, FLUX, backend, steps=CALIBRATED_STEPS, sigmas=sigmas))
    assert "sampler timesteps [1000, 887.835" in message and "step 1: " in message and "calibrate again" in message
    # another resolution recompiles: refused while compiling the dynamic graph
    message = refusal(lambda: generate(pipe, FLUX, backend, steps=CALIBRATED_STEPS, height=128))
    assert "feature 0 of shape [16, 32] recorded, [32, 32] here" in message


def test_a_calibrated_schedule_handed_to_a_dynamic_graph_refuses_the_sizes_it_was_not_made_for(files):
    """``retarget`` gives the file to graphs compiled before it: the dynamic one serves every size without compiling
    again, so only the check at each run's first full call sees the size."""
    schedule, _ = files
    pipe = FLUX.build()
    backend = enable_cache(pipe, "taylorseer", lowering="eager")
    for height in (64, 128):  # a static graph, then a dynamic one
        generate(pipe, FLUX, backend, steps=CALIBRATED_STEPS, height=height)
    backend.retarget(schedule=str(schedule.path))
    generate(pipe, FLUX, backend, steps=CALIBRATED_STEPS)
    assert backend.stats().last.contexts["cond"].computed == list(schedule.full_steps)
    message = refusal(lambda: generate(pipe, FLUX, backend, steps=CALIBRATED_STEPS, height=96, width=96))
    assert "calibrated on cached features of shape [16, 32]" in message and "this call's are [36, 32]" in message
    assert len(backend.runtimes) == 2  # served by the dynamic graph: nothing compiled, nothing checked at compile time


def test_magcache_ratios_are_resampled_by_timestep_to_other_step_counts_and_sizes(files, tmp_path):
    _, ratios = files
    data = json.loads(ratios.path.read_text())
    recorded = tuple(data["sampler_timesteps"])
    pipe = FLUX.build()
    backend = enable_cache(pipe, "magcache", lowering="eager", threshold=0.5, **ratios.overrides())
    schedule = backend.policy.schedule
    assert schedule.ratios_for(CALIBRATED_STEPS, recorded) == ratios.ratios  # its own grid: the recorded ratios
    assert "resampled to each run by timestep" in schedule.describe()
    grids = []
    for steps, size in ((CALIBRATED_STEPS, {}), (8, {}), (CALIBRATED_STEPS, {"height": 128, "width": 128})):
        generate(pipe, FLUX, backend, steps=steps, **size)
        grid = tuple(float(t) for t in pipe.scheduler.timesteps)  # the grid enable_cache reported for the run
        computed = backend.stats().last.contexts["cond"].computed
        assert computed == list(schedule.planned(steps, grid)) and 1 < len(computed) < steps, (steps, size, computed)
        grids.append(grid)
    assert grids[0] == pytest.approx(recorded) and grids[2] != pytest.approx(recorded)  # Flux's shift follows the size
    # a curve whose last ratio drops: 10 steps on this sampler reach the recorded last timestep (240) at steps 8 and 9
    # (by timestep), where the step position reaches index 5 at step 9 only
    (tmp_path / "drop.json").write_text(json.dumps({**data, "ratios": [1.0] * 5 + [0.8]}))
    schedule = backend.retarget(ratios=str(tmp_path / "drop.json"), threshold=0.1, max_cached_in_row=0).schedule
    generate(pipe, FLUX, backend, steps=10)
    assert backend.stats().last.contexts["cond"].computed == [0, 1, 8, 9]
    assert schedule.planned(10) == (0, 1, 9)  # by the normalised step position, had the run not said its grid


def test_magcache_ratios_refuse_a_run_reaching_timesteps_never_recorded(files, tmp_path):
    """Ratios recorded over the tail of the grid (as an image-to-image run records them) used at full strength."""
    _, ratios = files
    data = json.loads(ratios.path.read_text())
    tail = {**data, "ratios": data["ratios"][3:], "sampler_timesteps": data["sampler_timesteps"][3:], "num_steps": 3}
    (tmp_path / "tail.json").write_text(json.dumps(tail))
    pipe = FLUX.build()
    backend = enable_cache(pipe, "magcache", lowering="eager", ratios=str(tmp_path / "tail.json"))
    message = refusal(lambda: generate(pipe, FLUX, backend, steps=CALIBRATED_STEPS), RatiosTransferError)
    assert "recorded over sampler timesteps 612.866 to 240.478 (3 steps)" in message
    assert "step 0 of this generation is at 1000" in message and "c4d calibrate" in message
