"""Reproduce the shipped weights: ``python -m c4d_compile.reference.train {dit,flux,dit-eps,classifier}``.

Seeded and deterministic (same figures on a rerun on the same machine and torch build), on the CPU with
one thread, so that it runs beside other work and reductions happen in a fixed order. Train the
classifier first: the generative models' training ends with an evaluation of their samples by it.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .classifier import DigitClassifier
from .data import digits_tensors
from .evaluate import evaluate_steps, format_figures
from .models import build_reference_model
from .registry import CLASSIFIER_NAME, REFERENCE_MODELS, load_classifier, save_weights

__all__ = ["DEFAULT_RECIPES", "train_classifier", "train_generator"]

Loss = TypeVar("Loss", torch.Tensor, float)  # a loss tensor in training, its value when reporting

# Step counts sized for ~10-12 minutes per flow model on one core of this (shared, 2-core) CPU. In 2000-step
# DiT trials, lr 2e-3 with logit-normal times gave the same sample accuracy as 1e-3 with uniform times and a
# clearly lower Fréchet distance (163 vs 267, EMA weights, 100 samples); an EMA of the weights (decay 0.998)
# scored a worse test loss and FD than the last iterate of the cosine schedule, so there is none.
DEFAULT_RECIPES: dict[str, dict[str, Any]] = {
    "classifier": {"steps": 1500, "batch_size": 64, "lr": 2e-3, "warmup": 50},
    "dit": {"steps": 3000, "batch_size": 64, "lr": 2e-3, "warmup": 100},
    "flux": {"steps": 2500, "batch_size": 64, "lr": 2e-3, "warmup": 100},
    # DiT's objective: uniform t, L_hybrid with vlb_weight = λ = 0.001 (Improved DDPM, arXiv 2102.09672). 4000
    # steps took 15 minutes on a busy core (8 unloaded). ε-prediction amplifies ε errors by 1/sqrt(SNR) in the
    # x0 it implies, so this small model's high-noise x0 estimates are far worse than the flow DiT's, and its
    # samples get worse with more DDIM steps rather than better (class accuracy 0.966 at 10 steps, 0.924 at
    # 50, on 500 images). Short fine-tuning trials that drew t only from the noisy end (600..999) or the middle
    # (100..699) moved accuracy and FD by a few per cent either way, so t stays uniform, as DiT draws it.
    "dit-eps": {"steps": 4000, "batch_size": 64, "lr": 2e-3, "warmup": 100, "vlb_weight": 0.001},
}


@contextmanager
def _training_env(seed: int) -> Iterator[None]:
    """One thread (the machine is shared), deterministic kernels, a seeded global RNG; restored on exit."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _batches(n: int, batch_size: int, steps: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches over reshuffled epochs; a partial tail is dropped so every step sees a full batch."""
    done = 0
    while True:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1, batch_size):
            if done == steps:
                return
            done += 1
            yield order[start : start + batch_size]


def _optimizer(model: nn.Module, recipe: dict[str, Any]) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with linear warm-up then cosine decay to zero: the last steps refine rather than jump."""
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=0.01)
    warmup, steps = recipe["warmup"], recipe["steps"]

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _shift(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Augmentation: move each image by up to one pixel each way (padding with background)."""
    padded = F.pad(images, (1, 1, 1, 1), value=-1.0)
    dy, dx = torch.randint(0, 3, (2, images.shape[0]), generator=gen)
    out = torch.empty_like(images)
    for i in range(images.shape[0]):  # a batch is small; a loop is clearer than a gather
        out[i] = padded[i, :, dy[i] : dy[i] + images.shape[2], dx[i] : dx[i] + images.shape[3]]
    return out


def train_classifier(recipe: dict[str, Any], seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    images, labels = digits_tensors("train")
    test_images, test_labels = digits_tensors("test")
    with _training_env(seed):
        gen = torch.Generator().manual_seed(seed)
        model = DigitClassifier()
        opt, sched = _optimizer(model, recipe)
        start = time.perf_counter()
        bar = tqdm(_batches(len(labels), recipe["batch_size"], recipe["steps"], gen), total=recipe["steps"])
        for step, idx in enumerate(bar):
            loss = F.cross_entropy(model(_shift(images[idx], gen)), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        seconds = time.perf_counter() - start
        accuracy = (model.predict(test_images) == test_labels).double().mean().item()
    print(f"classifier: test accuracy {accuracy:.4f} ({len(test_labels)} images), {seconds:.0f} s")
    return model.eval(), {"train_seconds": round(seconds, 1), "test_accuracy": accuracy}


def _flow_loss(
    model: nn.Module, x0: torch.Tensor, labels: torch.Tensor, gen: torch.Generator, logit_normal: bool = True
) -> torch.Tensor:
    """Rectified-flow loss: x_t = (1 - t) x0 + t noise, regress v = noise - x0.

    t ~ logit-normal(0, 1) (SD3, arXiv 2403.03206): the ends of the path teach little (near t=1 the best v
    is the noise minus the class mean; near t=0 the noise is hidden in x_t, so the loss there is mostly
    irreducible), the middle is where a digit's shape is decided.
    """
    noise = torch.randn(x0.shape, generator=gen)
    z = torch.randn(x0.shape[0], generator=gen)
    t = torch.sigmoid(z) if logit_normal else torch.rand(x0.shape[0], generator=gen)
    tb = t[:, None, None, None]
    return F.mse_loss(model((1 - tb) * x0 + tb * noise, t, labels), noise - x0)


def _ddpm_losses(
    model: nn.Module, x0: torch.Tensor, labels: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_simple, mean L_t) for DDPM steps t drawn uniformly from 0..T-1.

    L_simple is the MSE of ε (DDPM); L_t the variational-bound term of each sample's step, in bits per
    dimension, with the gradient into ε stopped so that only the variance channel learns from it
    (Improved DDPM, arXiv 2102.09672, Sec. 3.1).
    """
    schedule = model.schedule
    t = torch.randint(0, schedule.num_timesteps, (x0.shape[0],), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    x_t = schedule.add_noise(x0, noise, t)
    eps, v = model.split_output(model.transformer(**model.transformer_inputs(x_t, t, labels)))
    vlb = schedule.vlb_terms(x0, x_t, t, eps.detach(), v)
    return F.mse_loss(eps, noise), vlb.mean()


def _hybrid_loss(mse: Loss, vlb_term: Loss, vlb_weight: float, num_timesteps: int) -> Loss:
    """L_hybrid = L_simple + λ L_vlb (Improved DDPM eq. 16), as DiT (arXiv 2212.09748) trains.

    L_vlb is a *sum* of T terms L_0 .. L_{T-1}; one uniformly drawn L_t, times T, estimates it without
    bias. So λ L_vlb becomes λ T L_t per sample: with λ = 0.001 and T = 1000, the single-step term at
    weight 1, as in both papers' training.
    """
    return mse + vlb_weight * num_timesteps * vlb_term


def _training_loss(
    model: nn.Module, x0: torch.Tensor, labels: torch.Tensor, gen: torch.Generator, recipe: dict[str, Any]
) -> torch.Tensor:
    """The objective that matches what the model predicts: flow matching for v, L_hybrid for ε."""
    if model.prediction == "epsilon":
        mse, vlb_term = _ddpm_losses(model, x0, labels, gen)
        return _hybrid_loss(mse, vlb_term, recipe["vlb_weight"], model.schedule.num_timesteps)
    return _flow_loss(model, x0, labels, gen, recipe.get("logit_normal", True))


@torch.no_grad()
def _test_losses(model: nn.Module, seed: int, recipe: dict[str, Any]) -> dict[str, float]:
    """Losses on the test split with fixed noise and times, comparable across runs of one model."""
    images, labels = digits_tensors("test")
    gen = torch.Generator().manual_seed(seed + 1)
    draws = 4
    if model.prediction == "epsilon":
        terms = [_ddpm_losses(model, images, labels, gen) for _ in range(draws)]
        mse = sum(mse.item() for mse, _ in terms) / draws
        vlb_term = sum(vlb_term.item() for _, vlb_term in terms) / draws
        total = _hybrid_loss(mse, vlb_term, recipe["vlb_weight"], model.schedule.num_timesteps)
        return {"test_loss": round(total, 5), "test_eps_mse": round(mse, 5)}
    # Uniform t: every time counts the same, whatever the training distribution of t was.
    flow = sum(_flow_loss(model, images, labels, gen, logit_normal=False).item() for _ in range(draws)) / draws
    return {"test_loss": round(flow, 5)}


def train_generator(name: str, recipe: dict[str, Any], seed: int = 0) -> tuple[nn.Module, dict[str, Any]]:
    """Train reference model ``name`` (flow or ε-prediction, by its ``prediction``) with ``recipe``."""
    images, labels = digits_tensors("train")
    with _training_env(seed):
        gen = torch.Generator().manual_seed(seed)
        model = build_reference_model(name, seed=seed).train()
        opt, sched = _optimizer(model, recipe)
        start, running = time.perf_counter(), None
        curve = []
        bar = tqdm(_batches(len(labels), recipe["batch_size"], recipe["steps"], gen), total=recipe["steps"])
        for step, idx in enumerate(bar):
            loss = _training_loss(model, images[idx], labels[idx], gen, recipe)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{running:.4f}", lr=f"{sched.get_last_lr()[0]:.1e}")
            if (step + 1) % max(1, recipe["steps"] // 10) == 0:
                curve.append([step + 1, round(running, 5)])
        seconds = time.perf_counter() - start
        model.eval()
        figures = {
            "train_seconds": round(seconds, 1),
            "loss_curve": curve,  # [step, smoothed training loss]
            **_test_losses(model, seed, recipe),  # fixed noise and times (uniform for flow)
        }
    print(f"{name}: {seconds:.0f} s, test loss {figures['test_loss']}")
    return model, figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=[*REFERENCE_MODELS, CLASSIFIER_NAME])
    parser.add_argument("--steps", type=int, help="override the recipe's optimizer steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="weights folder (default: the shipped one)")
    parser.add_argument("--no-eval", action="store_true", help="skip scoring samples with the classifier")
    args = parser.parse_args(argv)
    recipe = dict(DEFAULT_RECIPES[args.what])
    if args.steps is not None:
        recipe["steps"] = args.steps

    if args.what == CLASSIFIER_NAME:
        model, figures = train_classifier(recipe, args.seed)
    else:
        model, figures = train_generator(args.what, recipe, args.seed)
    meta = {
        "name": args.what,
        "config": _config_of(model),
        "parameters": sum(p.numel() for p in model.parameters()),
        "recipe": {**recipe, "seed": args.seed},
        "training": {**figures, "torch": torch.__version__, "threads": 1},
    }
    if args.what != CLASSIFIER_NAME and not args.no_eval:
        with _training_env(args.seed):  # one thread here too: the other core is busy
            meta["samples"] = _evaluate(model, args.out)
    path = save_weights(args.what, model, meta, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def _config_of(model: nn.Module) -> dict[str, Any]:
    if hasattr(model, "config") and isinstance(model.config, dict):
        return model.config
    return {"channels": model.conv[0].out_channels, "feature_dim": model.feature_dim}


def _evaluate(model: nn.Module, weights_dir: Path | None) -> dict[str, Any]:
    try:
        # The judge: a classifier trained into the same folder if there is one, else the shipped one.
        local = weights_dir is not None and (Path(weights_dir) / f"{CLASSIFIER_NAME}.safetensors").exists()
        classifier = load_classifier(weights_dir if local else None)
    except FileNotFoundError as err:
        print(f"skipping sample evaluation: {err}")
        return {}
    figures = evaluate_steps(model, classifier)
    print(format_figures(figures))
    return figures


if __name__ == "__main__":
    main()
