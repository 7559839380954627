"""PSNR, SSIM and Fréchet distance on known cases."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("torchmetrics")

from c4d_compile.reference.metrics import frechet_distance, psnr, ssim  # noqa: E402


def _images(seed: int = 0, n: int = 4) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 16, 16, generator=gen) * 1.8 - 0.9  # inside [-1, 1] with room for a shift


def test_identical_images_score_the_maximum():
    x = _images()
    assert torch.isinf(psnr(x, x)).all()
    torch.testing.assert_close(ssim(x, x), torch.ones(4, dtype=torch.float64))


def test_constant_offset_gives_the_known_psnr():
    x = _images()
    # MSE 0.01 on a data range of 2: 10 log10(2^2 / 0.01) = 26.02 dB, for every image.
    expected = 10 * math.log10(4 / 0.01)
    values = psnr(x + 0.1, x)
    assert values.shape == (4,)
    torch.testing.assert_close(values, torch.full((4,), expected, dtype=torch.float64))


def test_psnr_and_ssim_are_per_image_and_order_by_damage():
    x = _images(n=3)
    noisy = x.clone()
    gen = torch.Generator().manual_seed(1)
    noisy[1] += 0.05 * torch.randn(1, 16, 16, generator=gen)
    noisy[2] += 0.3 * torch.randn(1, 16, 16, generator=gen)
    p, s = psnr(noisy, x), ssim(noisy, x)
    assert math.isinf(p[0]) and p[1] > p[2]
    assert s[0] == pytest.approx(1.0) and 1.0 > s[1] > s[2]


def test_frechet_distance_is_zero_on_itself_and_grows_with_a_shift():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(200, 16, generator=gen)
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    # Shifting every feature by d adds exactly |d|^2 = 16 * 0.5^2 (covariances unchanged).
    assert frechet_distance(features, features + 0.5) == pytest.approx(4.0, rel=1e-6)
    assert frechet_distance(features, features + 1.0) > frechet_distance(features, features + 0.5)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError):
        psnr(torch.zeros(2, 1, 16, 16), torch.zeros(3, 1, 16, 16))
    with pytest.raises(ValueError):
        frechet_distance(torch.zeros(5, 4), torch.zeros(5, 3))
