"""What run returns, read as one final sample, and the error against the uncached one."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from c4d_compile import InvalidValueError
from c4d_compile.calibration.samples import FinalError, final_sample


class _Output:  # what a diffusers pipeline returns
    def __init__(self, images):
        self.images = images


def test_tensors_arrays_images_and_pipeline_outputs_become_one_flat_sample():
    t = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(final_sample(t), torch.arange(6.0, dtype=torch.float64))
    assert torch.equal(final_sample(np.arange(6.0).reshape(3, 2)), torch.arange(6.0, dtype=torch.float64))
    assert final_sample([t, (t, t)]).numel() == 18
    image = Image.fromarray(np.full((2, 2, 3), 7, dtype=np.uint8))
    assert torch.equal(final_sample(_Output([image, image])), torch.full((24,), 7.0, dtype=torch.float64))
    assert final_sample(_Output(t)).numel() == 6


def test_nothing_or_something_else_is_a_typed_error():
    for value in (None, [], "text", {"a": 1}):
        with pytest.raises(InvalidValueError, match="final sample"):
            final_sample(value)


def test_error_and_psnr_against_the_reference():
    reference = torch.tensor([-1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    error = FinalError(reference)
    assert error.peak == 2.0 and error.mse(reference) == 0 and error.psnr(0.0) == math.inf
    assert error.mse(reference + 0.1) == pytest.approx(0.01)
    assert error.psnr(0.01) == pytest.approx(10 * math.log10(4 / 0.01))
    with pytest.raises(InvalidValueError, match="same generations"):
        error.mse(torch.zeros(3, dtype=torch.float64))
