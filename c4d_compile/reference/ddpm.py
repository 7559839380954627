"""The DDPM forward process and Improved DDPM's hybrid objective, for training the ε-prediction model.

Noising: ``x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε`` for a discrete step t in 0..T-1. The model predicts ε
and, in a second output channel, the value v that places its reverse-step variance between the two
natural bounds β̃_t (the true posterior's) and β_t (Improved DDPM, arXiv 2102.09672, eq. 15).

L_simple (the MSE on ε) cannot train v, since it never looks at a variance. Improved DDPM adds the
variational bound for it, ``L_hybrid = L_simple + λ L_vlb`` with λ = 0.001, and stops the gradient of
L_vlb into the mean so that the ε channel is trained by L_simple alone (their Sec. 3.1); DiT (arXiv
2212.09748) trains its learned-sigma models this way. Everything here works on float64 constants
gathered per sample and cast to float32, so the schedule itself adds no rounding worth mentioning.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["DDPMSchedule", "discretized_gaussian_log_likelihood", "normal_kl"]


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise log-probability of the 8-bit bin holding x (in [-1, 1]) under N(mean, e^(2 log_scale)).

    The decoder term L_0 of DDPM's bound: pixels are 256 levels in [-1, 1], bins 2/255 wide, the two end
    bins stretched to infinity. The digits here are bilinearly upsampled and so not on that grid; the bin
    around x is still a fair stand-in for the density at x, and the term is only 1/T of the samples.
    """
    half_bin, inv_std = 1.0 / 255.0, torch.exp(-log_scale)
    upper, lower = (x - mean + half_bin) * inv_std, (x - mean - half_bin) * inv_std
    # log_ndtr keeps the tails accurate where a plain log(cdf) would underflow to log(0).
    log_below_upper = torch.special.log_ndtr(upper)  # the bin at -1 takes everything below it
    log_above_lower = torch.special.log_ndtr(-lower)  # the bin at +1 takes everything above it
    in_bin = (torch.special.ndtr(upper) - torch.special.ndtr(lower)).clamp(min=1e-12).log()
    return torch.where(x < -0.999, log_below_upper, torch.where(x > 0.999, log_above_lower, in_bin))


class DDPMSchedule:
    """Per-step constants of a beta schedule (float64), and the hybrid-loss pieces built on them."""

    def __init__(self, betas: torch.Tensor):
        self.betas = betas.double()
        self.num_timesteps = len(self.betas)
        alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        prev = torch.cat([alphas_cumprod.new_ones(1), alphas_cumprod[:-1]])
        self.alphas_cumprod = alphas_cumprod
        # The posterior q(x_{t-1} | x_t, x0) = N(coef_x0 x0 + coef_xt x_t, β̃_t) (Improved DDPM eqs. 10-12).
        self.posterior_variance = self.betas * (1.0 - prev) / (1.0 - alphas_cumprod)
        # β̃_0 = 0 and its log is -inf; t=0 is scored by the decoder term, which never reads it, so take β̃_1
        # there (the lower end of the learned range at t=0 then stays finite).
        self.posterior_log_variance = torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]).log()
        self.coef_x0 = self.betas * prev.sqrt() / (1.0 - alphas_cumprod)
        self.coef_xt = (1.0 - prev) * (1.0 - self.betas).sqrt() / (1.0 - alphas_cumprod)

    @classmethod
    def from_scheduler_config(cls, config: dict[str, Any]) -> DDPMSchedule:
        """The betas a diffusers DDIMScheduler with this config samples with: one schedule for both sides."""
        from diffusers import DDIMScheduler

        return cls(DDIMScheduler(**config).betas)

    @staticmethod
    def _at(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """values[t] per batch item, shaped (B, 1, 1, 1) to broadcast over images, float32."""
        return values[t].float()[:, None, None, None]

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε."""
        return self._at(self.alphas_cumprod.sqrt(), t) * x0 + self._at((1.0 - self.alphas_cumprod).sqrt(), t) * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 implied by a noise prediction: the inverse of ``add_noise``. Not clipped (training-time use)."""
        sqrt_one_minus = self._at((1.0 - self.alphas_cumprod).sqrt(), t)
        return (x_t - sqrt_one_minus * eps) / self._at(self.alphas_cumprod.sqrt(), t)

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self._at(self.coef_x0, t) * x0 + self._at(self.coef_xt, t) * x_t

    def model_log_variance(self, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """log Σ = frac log β_t + (1 - frac) log β̃_t with frac = (v + 1) / 2 (Improved DDPM eq. 15).

        The paper writes the weight as v in [0, 1]; the network's raw output is centred instead, v in
        [-1, 1] spanning the range, as diffusers' "learned_range" variance reads it. Nothing squashes v:
        beyond the range the log-variance extrapolates, as in the paper.
        """
        frac = (v + 1.0) / 2.0
        return frac * self._at(self.betas.log(), t) + (1.0 - frac) * self._at(self.posterior_log_variance, t)

    def vlb_terms(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """L_t of the variational bound per sample, (B,), in bits per dimension.

        L_t = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)) for t > 0, and the decoder's -log p(x0 | x_1) at
        t = 0, where p's mean comes from ``eps`` (through x0 and the posterior) and its variance from ``v``.
        Pass a detached ``eps`` to train only the variance with it, as L_hybrid does.
        """
        model_mean = self.posterior_mean(self.predict_x0(x_t, eps, t), x_t, t)
        model_log_var = self.model_log_variance(v, t)
        true_mean = self.posterior_mean(x0, x_t, t)
        kl = normal_kl(true_mean, self._at(self.posterior_log_variance, t), model_mean, model_log_var)
        decoder_nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var)
        per_pixel = torch.where((t == 0)[:, None, None, None], decoder_nll, kl)
        return per_pixel.mean(dim=(1, 2, 3)) / math.log(2.0)
