"""DiffAugment (Zhao et al. 2020): differentiable translation and cutout, applied to every
image D sees (real and fake alike), so D cannot memorise a small dataset.

Written after the authors' reference code (policy "translation,cutout"), with one change:
uncovered pixels take the background value -1 instead of 0, since these datasets are light
figures on a black background in [-1, 1].
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

BACKGROUND = -1.0


def translate(
    images: torch.Tensor, ratio: float = 0.125, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shifts each image by up to ratio * size pixels in x and y; uncovered pixels are -1."""
    n, _, height, width = images.shape
    sh, sw = int(height * ratio + 0.5), int(width * ratio + 0.5)
    device = images.device
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=device, generator=generator)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=device, generator=generator)
    rows = (torch.arange(height, device=device)[None, :, None] + dy + 1).clamp(0, height + 1)
    cols = (torch.arange(width, device=device)[None, None, :] + dx + 1).clamp(0, width + 1)
    padded = F.pad(images, [1, 1, 1, 1], value=BACKGROUND)  # (N, C, H + 2, W + 2)
    batch = torch.arange(n, device=device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (N, C, H, W)


def cutout(
    images: torch.Tensor, ratio: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sets one random (ratio * H) x (ratio * W) square of each image to -1."""
    n, _, height, width = images.shape
    ch, cw = int(height * ratio + 0.5), int(width * ratio + 0.5)
    device = images.device
    top = torch.randint(0, height + (1 - ch % 2), (n, 1, 1), device=device, generator=generator)
    left = torch.randint(0, width + (1 - cw % 2), (n, 1, 1), device=device, generator=generator)
    rows = torch.arange(height, device=device)[None, :, None]
    cols = torch.arange(width, device=device)[None, None, :]
    inside = ((rows - top + ch // 2).clamp(min=0) < ch) & (rows >= top - ch // 2)
    inside = inside & ((cols - left + cw // 2).clamp(min=0) < cw) & (cols >= left - cw // 2)
    return images.masked_fill(inside[:, None], BACKGROUND)  # mask (N, 1, H, W)


def diff_augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translation then cutout, differentiable with respect to `images`."""
    return cutout(translate(images, generator=generator), generator=generator)
