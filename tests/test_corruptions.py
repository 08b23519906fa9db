"""The corruptions the judge is trained on and measured with, each against its definition."""

import math

import pytest
import torch

from gankit.metrics.corruptions import (
    ROBUSTNESS,
    affine,
    blur,
    corrupt_for_training,
    dilate,
    erode,
    gaussian_kernel,
    gaussian_noise,
    shift_pixels,
    speckle,
)


def bar(width: int, size: int = 12) -> torch.Tensor:
    """(1, 1, size, size): background with a vertical white bar `width` pixels wide."""
    image = torch.full((1, 1, size, size), -1.0)
    image[..., 2:-2, 4 : 4 + width] = 1.0
    return image


def test_speckle_hits_the_asked_share_of_pixels_with_black_and_white():
    images = torch.zeros(50, 1, 28, 28)
    out = speckle(images, 0.05, torch.Generator().manual_seed(0))
    hit = out != 0
    assert abs(hit.double().mean().item() - 0.05) < 0.002
    assert set(out[hit].unique().tolist()) == {-1.0, 1.0}
    assert abs((out[hit] == 1).double().mean().item() - 0.5) < 0.03
    per_image = speckle(images[:2], torch.tensor([0.0, 1.0]), torch.Generator().manual_seed(0))
    assert (per_image[0] == 0).all() and (per_image[1] != 0).all()


def test_randomness_comes_from_the_generator_only():
    images = torch.zeros(4, 1, 28, 28)
    a = speckle(images, 0.1, torch.Generator().manual_seed(3))
    torch.manual_seed(99)  # the global stream must not matter
    b = speckle(images, 0.1, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    c = gaussian_noise(images, 0.2, torch.Generator().manual_seed(3))
    assert c.std().item() == pytest.approx(0.2, rel=0.05)
    assert gaussian_noise(torch.ones(2, 1, 4, 4), 5.0, torch.Generator()).max() <= 1.0


def test_erosion_and_dilation_change_a_stroke_by_one_pixel_of_width():
    for width in (2, 3, 4):
        columns = lambda image: int((image[0, 0, 6] > 0).sum())  # noqa: E731 (width of row 6)
        assert columns(bar(width)) == width
        assert columns(erode(bar(width))) == width - 1
        assert columns(dilate(bar(width))) == width + 1
    # a one-pixel stroke erodes away; the background stays background
    assert (erode(bar(1)) == -1).all()
    assert (dilate(torch.full((1, 1, 5, 5), -1.0)) == -1).all()


def test_blur_keeps_the_background_and_spreads_ink_by_sigma():
    kernel = gaussian_kernel(1.0)
    assert len(kernel) == 7 and kernel.sum().item() == pytest.approx(1.0)
    assert kernel[3] / kernel[4] == pytest.approx(math.exp(0.5))
    background = torch.full((2, 1, 28, 28), -1.0)
    torch.testing.assert_close(blur(background, 1.0), background)
    dot = torch.full((1, 1, 15, 15), -1.0)
    dot[..., 7, 7] = 1.0
    out = blur(dot, 1.0) + 1  # ink above the background: the 2-d Gaussian times 2
    torch.testing.assert_close(out.sum(), torch.tensor(2.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0, 0, 7, 7], 2 * kernel[3] ** 2)
    with pytest.raises(ValueError, match="sigma"):
        blur(dot, 0.0)


def test_shifts_and_rotations_move_ink_where_they_should():
    image = bar(2)
    torch.testing.assert_close(shift_pixels(image, 3, 0)[..., 3:], image[..., :-3])
    assert (shift_pixels(image, 3, -2)[..., :, :3] == -1).all()
    torch.testing.assert_close(affine(image), image, atol=1e-5, rtol=0)
    # a quarter turn of a vertical bar gives a horizontal one
    square = torch.full((1, 1, 12, 12), -1.0)
    square[..., :, 5:7] = 1.0
    turned = affine(square, 90.0)
    torch.testing.assert_close(turned, square.transpose(-1, -2), atol=1e-4, rtol=0)
    mirrored = affine(bar(2), mirror=torch.tensor([True]))
    torch.testing.assert_close(mirrored, bar(2).flip(-1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(ROBUSTNESS))
def test_every_robustness_corruption_changes_images_and_keeps_the_range(name):
    strengths, _unit, corrupt = ROBUSTNESS[name]
    images = torch.rand(8, 1, 28, 28) * 2 - 1
    for strength in strengths:
        out = corrupt(images, strength, torch.Generator().manual_seed(0))
        assert out.shape == images.shape
        assert out.min() >= -1 and out.max() <= 1
        assert not torch.equal(out, images)


def test_training_corruption_leaves_about_two_sevenths_of_digits_clean():
    images = torch.rand(7000, 1, 28, 28) * 2 - 1
    out = corrupt_for_training(images, torch.Generator().manual_seed(0), strokes=True)
    clean = (out == images).flatten(1).all(1).double().mean().item()
    assert abs(clean - 2 / 7) < 0.02
    again = corrupt_for_training(images, torch.Generator().manual_seed(0), strokes=True)
    torch.testing.assert_close(out, again)
    clothes = corrupt_for_training(images, torch.Generator().manual_seed(0), strokes=False)
    assert abs((clothes == images).flatten(1).all(1).double().mean().item() - 1 / 4) < 0.02
