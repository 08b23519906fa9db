"""Image corruptions: what the judge must read through, and what the metrics must still penalise.

The domain classifiers are trained on these (so a speckled but clearly drawn digit is read as
its digit); the robustness table measures accuracy under them; the calibration table checks that
FID and KID still grow with them. Every function takes float images (N, 1, H, W) in [-1, 1],
ink at +1 and background at -1 (as the datasets are loaded), and returns the same shape in
[-1, 1]. Randomness comes from `generator` only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

BACKGROUND = -1.0


def speckle(
    images: torch.Tensor, fraction: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Salt-and-pepper noise: each pixel, with probability `fraction` (a float, or (N,) per
    image), is set to black or white with equal odds."""
    fraction = torch.as_tensor(fraction, dtype=images.dtype, device=images.device)
    if fraction.ndim == 1:
        fraction = fraction.view(-1, 1, 1, 1)  # (N,) -> (N, 1, 1, 1)
    hit = torch.rand(images.shape, generator=generator, device=images.device) < fraction
    salt = torch.rand(images.shape, generator=generator, device=images.device) < 0.5
    return torch.where(hit, salt.to(images.dtype) * 2 - 1, images)


def gaussian_noise(
    images: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Additive Gaussian pixel noise of standard deviation `sigma` (in [-1, 1] units; a float or
    (N,) per image), clipped to [-1, 1]."""
    sigma = torch.as_tensor(sigma, dtype=images.dtype, device=images.device)
    if sigma.ndim == 1:
        sigma = sigma.view(-1, 1, 1, 1)
    noise = torch.randn(images.shape, generator=generator, device=images.device)
    return (images + sigma * noise).clamp(-1.0, 1.0)


def _square_neighbours(images: torch.Tensor) -> torch.Tensor:
    """(4, N, C, H, W): each pixel and its right, lower and lower-right neighbours, background
    outside the image."""
    padded = F.pad(images, (0, 1, 0, 1), value=BACKGROUND)
    h, w = images.shape[-2:]
    return torch.stack([padded[..., dy : dy + h, dx : dx + w] for dy in (0, 1) for dx in (0, 1)])


def erode(images: torch.Tensor) -> torch.Tensor:
    """Grey-scale erosion with a 2x2 footprint: strokes lose one pixel of width. (A 3x3 or
    cross footprint thins them by two pixels, which erases MNIST's thinnest strokes: that is
    not a digit a person still reads as drawn.)"""
    return _square_neighbours(images).amin(0)


def dilate(images: torch.Tensor) -> torch.Tensor:
    """Grey-scale dilation with a 2x2 footprint: strokes gain one pixel of width."""
    return _square_neighbours(images).amax(0)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-d Gaussian of radius ceil(3 sigma) (at least 1)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of standard deviation `sigma` pixels; the image is extended with
    background, as the page around a digit is."""
    if sigma <= 0:
        raise ValueError(f"blur sigma must be > 0 pixels, got {sigma}")
    kernel = gaussian_kernel(sigma).to(images.device, images.dtype)
    radius, channels = len(kernel) // 2, images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), value=BACKGROUND)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def affine(
    images: torch.Tensor,
    degrees: torch.Tensor | float = 0.0,
    scale: torch.Tensor | float = 1.0,
    shift: torch.Tensor | tuple[float, float] = (0.0, 0.0),
    mirror: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rotation (degrees, counter-clockwise), scale, shift (pixels, (dx, dy) or (N, 2)) and an
    optional horizontal mirror (N,) bool per image, about the image centre, with background
    filling what comes in from outside (bilinear)."""
    n, size = images.shape[0], images.shape[-1]
    degrees = torch.as_tensor(degrees, dtype=torch.float32).expand(n)
    scale = torch.as_tensor(scale, dtype=torch.float32).expand(n)
    shift = torch.as_tensor(shift, dtype=torch.float32).expand(n, 2) * (2.0 / size)
    angle = torch.deg2rad(degrees)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # the grid maps output coordinates to input ones: the inverse of the wanted motion
    theta = torch.stack(
        [torch.stack([cos, sin, -shift[:, 0]], 1), torch.stack([-sin, cos, -shift[:, 1]], 1)], 1
    )  # (N, 2, 3)
    if mirror is not None:
        theta[mirror, :, 0] *= -1
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    out = F.grid_sample(images - BACKGROUND, grid, align_corners=False, padding_mode="zeros")
    return out + BACKGROUND


def shift_pixels(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """An exact whole-pixel shift (dx right, dy down), background coming in."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (abs(dx), abs(dx), abs(dy), abs(dy)), value=BACKGROUND)
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[..., top : top + h, left : left + w]


# The robustness table: name -> (what it does to a batch, given a strength and a generator);
# measured at up to two strengths. Shifts go four ways, rotations both ways, in equal shares.
def _signed(images: torch.Tensor, fn: Callable, value: float) -> torch.Tensor:
    half = len(images) // 2
    return torch.cat([fn(images[:half], value), fn(images[half:], -value)])


def _four_ways(images: torch.Tensor, step: int) -> torch.Tensor:
    """A quarter of the images each moved right, left, down and up by `step` pixels."""
    moves = ((step, 0), (-step, 0), (0, step), (0, -step))
    parts = torch.tensor_split(images, 4)
    return torch.cat(
        [shift_pixels(part, dx, dy) for part, (dx, dy) in zip(parts, moves, strict=True)]
    )


ROBUSTNESS = {
    "speckle": ((0.02, 0.05), "of pixels", lambda x, s, g: speckle(x, s, g)),
    "shift": ((1, 2), "px", lambda x, s, g: _four_ways(x, s)),
    "rotation": ((10, 20), "deg", lambda x, s, g: _signed(x, lambda y, v: affine(y, v), s)),
    "erosion": ((1,), "px", lambda x, s, g: erode(x)),
    "dilation": ((1,), "px", lambda x, s, g: dilate(x)),
    "blur": ((0.5, 1.0), "sigma px", lambda x, s, g: blur(x, s)),
}


def corrupt_for_training(
    images: torch.Tensor, generator: torch.Generator, strokes: bool
) -> torch.Tensor:
    """The classifiers' corruption augmentation: a third of the images stay clean, the others
    each get one of speckle (1-10% of pixels), Gaussian noise (sigma 0.05-0.3), blur (sigma 0.5,
    1 or 1.5) and, where `strokes` (digits), one-pixel erosion or dilation."""
    n = len(images)
    options = 5 if strokes else 3
    choice = torch.randint(
        0, options + options // 2, (n,), generator=generator
    )  # >= options: clean
    out = images.clone()
    amount = torch.rand(n, generator=generator)
    noisy = speckle(images, 0.01 + 0.09 * amount, generator)
    out[choice == 0] = noisy[choice == 0]
    noisy = gaussian_noise(images, 0.05 + 0.25 * amount, generator)
    out[choice == 1] = noisy[choice == 1]
    sigmas = torch.randint(0, 3, (n,), generator=generator)
    for i, sigma in enumerate((0.5, 1.0, 1.5)):
        chosen = (choice == 2) & (sigmas == i)
        if chosen.any():
            out[chosen] = blur(images[chosen], sigma)
    if strokes:
        out[choice == 3] = erode(images[choice == 3])
        out[choice == 4] = dilate(images[choice == 4])
    return out
