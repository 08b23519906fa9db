"""Generating images: noise, labels, `sample` and the run's progress grid.

Loading a generator is `gankit.loading`'s; converting and laying out images is `gankit.images`'.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from gankit.errors import UsageError
from gankit.images import save_grid
from gankit.models.conditioning import check_labels

logger = logging.getLogger(__name__)


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """n labels, n // C of each class in order; the remainder goes to the lowest classes."""
    counts = torch.full((num_classes,), n // num_classes, dtype=torch.int64)
    counts[: n % num_classes] += 1
    return torch.repeat_interleave(torch.arange(num_classes), counts)


TRUNCATION = (0.05, 2.0)  # the truncation trick's allowed t (the web demo and CLI enforce it)


def draw_noise(
    n: int, dim: int, generator: torch.Generator | None = None, truncation: float | None = None
) -> torch.Tensor:
    """z ~ N(0, I) (n, dim) on the CPU; with `truncation` t in 0.05..2, from the normal
    truncated to [-t, t] (`torch.nn.init.trunc_normal_`: inverse-CDF sampling, one pass and no
    redraws, so even a tiny t costs no more than the plain normal)."""
    if truncation is None:
        return torch.randn(n, dim, generator=generator)
    low, high = TRUNCATION
    if not low <= truncation <= high:  # also refuses NaN
        raise UsageError(f"truncation must be in {low}..{high}, got {truncation}")
    z = torch.empty(n, dim)
    return torch.nn.init.trunc_normal_(z, 0.0, 1.0, -truncation, truncation, generator=generator)


@torch.no_grad()
def sample(
    model: nn.Module,
    n: int,
    *,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 1000,
    z: torch.Tensor | None = None,
    truncation: float | None = None,
) -> torch.Tensor:
    """Draws n images from a generator in eval mode (its training mode is restored after).

    Args:
        model: a generator, `model(z, labels) -> (N, C, H, W)` in [-1, 1].
        n: number of images.
        labels: int64 (n,) class labels for a conditional model, else None.
        generator: RNG for the noise (drawn on the CPU, so results match across devices).
        device: where the model runs.
        batch_size: images per forward pass.
        z: explicit noise (n, latent_dim) instead of drawing it.
        truncation: draw z from a normal truncated to [-t, t] (the truncation trick: less
            variety, cleaner images), or None for the plain normal.

    Returns:
        float32 (n, C, H, W) in [-1, 1], on the CPU.
    """
    check_labels(labels, getattr(model, "num_classes", 0))
    if labels is not None and len(labels) != n:
        raise UsageError(f"got {len(labels)} labels for n = {n} images")
    if z is None:
        z = draw_noise(n, model.latent_dim, generator, truncation)
    was_training = model.training
    model.eval()
    try:
        chunks = []
        for start in range(0, n, batch_size):
            z_chunk = z[start : start + batch_size].to(device)
            y_chunk = None if labels is None else labels[start : start + batch_size].to(device)
            chunks.append(model(z_chunk, y_chunk).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, *model.image_shape)


def sample_balanced(
    model: nn.Module, n: int, seed: int = 0, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n images (N, C, H, W) in [-1, 1], with balanced labels for a conditional model."""
    classes = getattr(model, "num_classes", 0)
    labels = balanced_labels(n, classes) if classes else None
    generator = torch.Generator().manual_seed(seed)
    return sample(model, n, labels=labels, generator=generator, device=device), labels


def fixed_noise_grid(
    model: nn.Module, z: torch.Tensor, labels: torch.Tensor | None, path: str | Path
) -> Path:
    """The run's progress grid: 5x5 for a GAN; one panel per class, titled, for a CGAN."""
    images = sample(model, len(z), labels=labels, z=z, device=z.device)
    if labels is None:
        return save_grid(images, path, ncol=5)
    titles = [f"Digit: {k}" for k in labels.tolist()]
    return save_grid(images, path, ncol=5 if len(z) == 10 else min(len(z), 10), titles=titles)
