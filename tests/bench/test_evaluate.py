"""``c4d evaluate`` on tiny real diffusers pipelines (``support.evaluate_factories``): the metrics on known cases,
every row checked against a generation made here by hand, equal compute, peers, optional scores, the pipeline left
as it was, the files written and the typed errors."""

from __future__ import annotations

import importlib.util
import json
import math
import warnings

import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = [pytest.mark.filterwarnings("ignore:In CPU autocast:UserWarning"), pytest.mark.usefixtures("one_thread")]

from c4d_compile import C4DWarning  # noqa: E402
from c4d_compile.bench.evaluate import EvalConfig, evaluate  # noqa: E402
from c4d_compile.bench.evaluate_metrics import data_range, psnr, ssim  # noqa: E402
from c4d_compile.bench.evaluate_report import write_all  # noqa: E402
from c4d_compile.bench.evaluate_target import load_target, read_prompts  # noqa: E402
from c4d_compile.bench.matrix import equal_compute  # noqa: E402
from c4d_compile.cli import main  # noqa: E402
from c4d_compile.errors import InvalidValueError  # noqa: E402
from c4d_compile.pipelines import enable_cache_with  # noqa: E402

PROMPTS = ("a red fox", "a lighthouse at dusk")
STEPS = 8


def _images(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(seed)) * 0.8 + 0.1


def test_psnr_and_data_range_on_known_cases():
    x = _images()
    assert psnr(x, x, 1.0) == math.inf
    assert psnr(x + 0.1, x, 1.0) == pytest.approx(20.0)  # MSE 0.01 on a range of 1
    latent = torch.tensor([[-3.0, 1.0], [0.0, 2.0]])
    assert data_range(latent, "latent") == 5.0 and data_range(latent, "image") == 1.0
    with pytest.raises(InvalidValueError, match="image, latent"):
        data_range(latent, "pixels")
    with pytest.raises(InvalidValueError, match="shape"):
        psnr(x, x[:1], 1.0)


def test_ssim_is_torchmetrics_gaussian_ssim_and_orders_by_damage():
    x = _images()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert ssim(x, x, 1.0) == pytest.approx(1.0)
    values = [ssim((x + s * noise).clamp(0, 1), x, 1.0) for s in (0.02, 0.1, 0.3)]
    assert 1 > values[0] > values[1] > values[2] > 0
    assert ssim(torch.zeros(1, 16, 64), torch.zeros(1, 16, 64), 1.0) is None  # packed tokens: no image
    assert ssim(torch.zeros(1, 4, 5, 5), torch.zeros(1, 4, 5, 5), 1.0) is None  # smaller than the padding
    tm = pytest.importorskip("torchmetrics.functional.image")
    y = (x + 0.1 * noise).clamp(0, 1)
    expected = tm.structural_similarity_index_measure(y.double(), x.double(), data_range=1.0).item()
    assert ssim(y, x, 1.0) == pytest.approx(expected, abs=1e-12)
    latent, other = x * 6 - 3, y * 6 - 3  # a latent-like range, on 8 x 8 like the tiny pipelines' latents
    expected = tm.structural_similarity_index_measure(other[..., :8, :8].double(), latent[..., :8, :8].double(),
                                                      data_range=6.0).item()
    assert ssim(other[..., :8, :8], latent[..., :8, :8], 6.0) == pytest.approx(expected, abs=1e-12)


def test_prompts_come_from_a_list_or_a_file(tmp_path):
    assert read_prompts(["a", "b"], None) == ("a", "b")
    file = tmp_path / "prompts.txt"
    file.write_text("# comment\n a cat \n\nthe sea\n")
    assert read_prompts(None, str(file)) == ("a cat", "the sea")
    file.write_text("# nothing\n")
    for prompts, path in ((None, str(file)), (["a"], str(file)), (None, None), (None, str(tmp_path / "no.txt"))):
        with pytest.raises(InvalidValueError):
            read_prompts(prompts, path)


def _by_hand(target, preset: str | None, steps: int = STEPS) -> list[torch.Tensor]:
    """The pipeline's outputs for PROMPTS at seed 0, uncached or with ``preset`` enabled here (eager)."""
    from c4d_compile import c4d_backend

    undo = enable_cache_with(target.pipe, c4d_backend(preset, lowering="eager")) if preset else None
    try:
        return [target.generate(p, 0, steps) for p in PROMPTS]
    finally:
        if undo is not None:
            undo()
        torch._dynamo.reset()


def _mean_psnr(outputs, references) -> float:
    return sum(psnr(o, r, data_range(r, "latent")) for o, r in zip(outputs, references)) / len(outputs)


@pytest.fixture(scope="module")
def sd3_run(tmp_path_factory):
    """Tiny SD3 (batched CFG, (1, 4, 8, 8) latents): two presets and auto, two prompts, 8 steps."""
    out = tmp_path_factory.mktemp("evaluate-sd3")
    target = load_target("support.evaluate_factories:sd3")
    transformer, scheduler = target.pipe.transformer, target.pipe.scheduler
    config = EvalConfig("support.evaluate_factories:sd3", PROMPTS, STEPS, methods=("taylorseer", "fora", "auto"),
                        lowering="eager", auto_effort="fast", out=str(out), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", C4DWarning)
        result = evaluate(config, target)
    written = write_all(result, out, ["evaluate", "--pipeline", config.pipeline])
    return target, result, out, written, (transformer, scheduler)


def test_every_row_is_what_the_pipeline_gives_by_hand(sd3_run):
    target, result, _, _, (transformer, scheduler) = sd3_run
    # the pipeline is left as it was: no compiled wrapper, context router or scheduler hook behind
    assert target.pipe.transformer is transformer and "cache_context" not in vars(transformer)
    assert target.pipe.scheduler is scheduler and "set_timesteps" not in vars(scheduler)
    rows = {r.method: r for r in result.rows}
    assert list(rows)[:4] == ["uncached", "taylorseer", "fora", "auto"]
    assert result.kind == "latent" and result.output_shape == (1, 4, 8, 8) and not result.skipped
    reference = _by_hand(target, None)
    assert not torch.equal(reference[0], reference[1])  # the prompts reach the pipeline
    assert rows["uncached"].psnr_mean == math.inf and rows["uncached"].ssim_mean == pytest.approx(1.0)
    for preset in ("taylorseer", "fora"):
        row = rows[preset]
        assert row.psnr_mean == pytest.approx(_mean_psnr(_by_hand(target, preset), reference), abs=1e-6)
        assert 0 < row.ssim_mean < 1 and row.cache_mib > 0 and row.compiled
        (name, ctx), = row.contexts.items()  # batched CFG: one context
        assert ctx["steps"] == STEPS and ctx["full"] == len(ctx["computed"]) and 1 < ctx["full"] < STEPS
        assert row.ideal_speedup > STEPS / (ctx["full"] + 1)  # cached steps cost something, but far less
        assert row.flop_steps == pytest.approx(STEPS / row.ideal_speedup)


def test_each_method_is_held_against_fewer_steps_at_its_compute(sd3_run):
    target, result, *_ = sd3_run
    rows = {r.method: r for r in result.rows}
    reference = _by_hand(target, None)
    for method in ("taylorseer", "fora", "auto"):
        row = rows[method]
        k = equal_compute(STEPS, row.ideal_speedup)
        assert k < STEPS and row.baseline_steps == k
        fewer = rows[f"uncached, {k} steps"]
        assert fewer.family == "fewer steps" and fewer.steps == k and row.baseline_psnr == fewer.psnr_mean
        assert fewer.psnr_mean == pytest.approx(_mean_psnr(_by_hand(target, None, k), reference), abs=1e-6)
        assert row.gain_db == pytest.approx(row.psnr_mean - fewer.psnr_mean)
        assert row.gain_db > 0  # every method beats fewer steps on this model (8 to 16 dB when written)
    assert {r.method for r in result.rows if r.family == "fewer steps"} == {
        f"uncached, {rows[m].baseline_steps} steps" for m in ("taylorseer", "fora", "auto")}


def test_auto_is_calibrated_on_an_unscored_seed_at_one_in_five(sd3_run):
    _, result, out, *_ = sd3_run
    auto = next(r for r in result.rows if r.method == "auto")
    budget = math.ceil(STEPS / 5)
    assert auto.settings["budget"] == budget and len(auto.settings["full_steps"]) == budget
    assert (out / f"auto-{budget}of{STEPS}.json").is_file() and auto.settings["chosen"]
    assert [c["full"] for c in auto.contexts.values()] == [budget]


def test_table_json_and_grid_are_written(sd3_run):
    _, result, out, written, _ = sd3_run
    assert [p.name for p in written] == ["evaluate.md", "evaluate.json", "grid.png"]
    assert (out / "grid.png").stat().st_size > 1000
    table = (out / "evaluate.md").read_text()
    assert "| taylorseer | 8 (" in table and "| uncached, " in table
    for name, option in (("LPIPS", "--lpips-model"), ("CLIP score", "--clip-model"), ("ImageReward",
                                                                                       "--imagereward-model")):
        assert f"- {name}: not measured (no local model; {option}" in table
    data = json.loads((out / "evaluate.json").read_text())
    assert data["meta"]["command"].startswith("c4d evaluate") and data["kind"] == "latent"
    assert [r["method"] for r in data["rows"]] == [r.method for r in result.rows]
    assert data["rows"][0]["psnr_mean"] is None  # infinity, which JSON cannot hold
    assert data["generations"] == [{"prompt": p, "seed": 0} for p in PROMPTS]


def test_peers_run_uncompiled_against_the_uncompiled_pipeline(tmp_path):
    """Tiny Flux (packed latents): diffusers' and cache-dit's TaylorSeer on private copies of the transformer,
    their ideal speedup from FLOPs counted in the transformer."""
    peers = ["diffusers-taylorseer"] + (["cache-dit-taylorseer"] if importlib.util.find_spec("cache_dit") else [])
    target = load_target("support.evaluate_factories:flux")
    transformer = target.pipe.transformer
    config = EvalConfig("support.evaluate_factories:flux", PROMPTS[:1], 10, methods=("taylorseer", *peers),
                        lowering="eager", out=str(tmp_path), progress=False)
    result = evaluate(config, target)
    rows = {r.method: r for r in result.rows}
    assert not result.skipped, result.skipped
    assert rows["uncached, not compiled"].psnr_mean == math.inf  # eager: the same numbers compiled or not
    for peer in peers:
        row = rows[peer]
        assert not row.compiled and row.family in ("diffusers", "cache-dit") and row.contexts is None
        assert 2 < row.ideal_speedup < 5 and 20 < row.psnr_mean < math.inf and row.cache_mib > 0
        assert row.baseline_steps == equal_compute(10, row.ideal_speedup)
    assert target.pipe.transformer is transformer  # the peers hooked and patched copies of it
    assert not any(getattr(m, "_diffusers_hook", None) and m._diffusers_hook.hooks for m in transformer.modules())
    assert "_is_patched" not in vars(transformer) and "forward" not in vars(transformer)
    write_all(result, tmp_path, [])
    assert "no image grid: the pipeline returns latents of shape (1, 16, 16)" in (tmp_path / "evaluate.md").read_text()
    assert not (tmp_path / "grid.png").exists()


def test_the_cli_scores_decoded_images_with_a_local_clip_model(tmp_path, capsys):
    from support.evaluate_factories import tiny_clip

    from c4d_compile.bench.evaluate_scorers import ClipScore

    clip = tiny_clip(tmp_path / "clip")
    no_lpips = importlib.util.find_spec("lpips") is None
    weights = tmp_path / "alexnet.pth"  # named but unusable: only where the package is missing
    weights.write_bytes(b"")
    out = tmp_path / "out"
    code = main(["evaluate", "--pipeline", "support.evaluate_factories:sd3_images", "--prompts", PROMPTS[0],
                 "--seeds", "0", "1", "--steps", str(STEPS), "--methods", "fora", "--lowering", "eager",
                 "--clip-model", clip, *(["--lpips-model", str(weights)] if no_lpips else []), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "| fora | 8 (" in printed and f"wrote {out / 'evaluate.md'}" in printed
    data = json.loads((out / "evaluate.json").read_text())
    assert data["kind"] == "image" and data["output_shape"] == [1, 3, 64, 64]
    assert data["config"]["models"]["clip"] == clip and (out / "grid.png").is_file()
    if no_lpips:
        assert data["not_measured"]["lpips"] == "not measured (package lpips not installed)"
    rows = {r["method"]: r for r in data["rows"]}
    fora, uncached = rows["fora"], rows["uncached"]
    assert 0 < fora["ssim_mean"] < 1 and 10 < fora["psnr_mean"]  # images in [0, 1]: data range 1
    scorer = ClipScore(tmp_path / "clip", "cpu")
    target = load_target("support.evaluate_factories:sd3_images")
    by_hand = [scorer(target.generate(PROMPTS[0], seed, STEPS), None, PROMPTS[0]) for seed in (0, 1)]
    assert uncached["scores"]["clip"] == pytest.approx(sum(by_hand) / 2, abs=1e-4)
    assert 0 <= fora["scores"]["clip"] <= 100 and set(fora["scores"]) == {"clip"}


@pytest.mark.parametrize("args, message", [
    (["--methods", "nope"], "diffusers-taylorseer"),
    (["--steps", "1"], "integer >= 2"),
    (["--seeds", "1000"], "calibration seed"),
    (["--budget", "9"], "1..8"),
    (["--set", "nope=1"], "nope"),
    (["--methods", "auto", "--budget", "1"], "auto: an integer in 2..8"),
])
def test_bad_input_is_a_typed_error(args, message, capsys):
    base = {"--pipeline": "support.evaluate_factories:sd3", "--prompts": "a", "--steps": str(STEPS),
            "--lowering": "eager"}
    for key, value in zip(args[::2], args[1::2]):
        base[key] = value
    argv = ["evaluate", *[x for kv in base.items() for x in kv]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("c4d: error: ") and message in err


def test_a_missing_model_or_pipeline_is_named(tmp_path, capsys):
    base = ["evaluate", "--prompts", "a", "--steps", "4", "--lowering", "eager"]
    assert main([*base, "--pipeline", "support.evaluate_factories:sd3_images", "--clip-model",
                 str(tmp_path / "none")]) == 2
    assert "never downloaded" in capsys.readouterr().err
    assert main([*base, "--pipeline", str(tmp_path / "no-such-pipeline")]) == 2
    assert "module:factory" in capsys.readouterr().err
    with pytest.raises(InvalidValueError, match="diffusers pipeline"):
        load_target("support.cli_factories:plain_mlp")
