"""Generating images: load a trained generator, sample, convert, and draw grids.

Grids are drawn with numpy and Pillow in a few lines, so that gankit does without torchvision
(whose wheels do not install beside every torch build).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from gankit.checkpoint import load_checkpoint
from gankit.config import RunConfig
from gankit.errors import UsageError
from gankit.models import build_models
from gankit.models.conditioning import check_labels
from gankit.run import ExportFolder, RunFolder

logger = logging.getLogger(__name__)


@dataclass
class LoadedGenerator:
    """A generator restored from a run, ready to sample.

    Attributes:
        model: the generator in eval mode (the EMA weights when the checkpoint has them).
        config: the run's configuration.
        num_classes: classes of a conditional model, 0 for an unconditional one.
        image_shape: (C, H, W).
        step: training iterations of the checkpoint.
        checkpoint: the file it came from.
        metrics: figures stored in the checkpoint.
        ema: whether the weights are the EMA of G's.
    """

    model: nn.Module
    config: RunConfig
    num_classes: int
    image_shape: tuple[int, int, int]
    step: int
    checkpoint: Path
    metrics: dict[str, Any]
    ema: bool = False


def load_generator(
    run_dir: str | Path, checkpoint: str = "latest", device: str | torch.device = "cpu"
) -> LoadedGenerator:
    """Loads the generator of a run ("latest", "best" or a checkpoint path), or of a
    safetensors export folder (`gankit export`; `checkpoint` must then be "latest")."""
    if ExportFolder(run_dir).is_export():
        from gankit.export import load_export

        if checkpoint != "latest":
            raise UsageError(f"{str(run_dir)!r} is an export: it has one generator, no checkpoints")
        return load_export(run_dir, device)
    path = RunFolder(run_dir).resolve(checkpoint)
    state = load_checkpoint(path, map_location=device)
    config = RunConfig.from_dict(state.config)
    generator, _ = build_models(config.model, state.image_shape, state.num_classes)
    weights = state.generator_ema if state.generator_ema is not None else state.generator
    generator.load_state_dict(weights)
    generator.to(device).eval()
    return LoadedGenerator(
        generator,
        config,
        state.num_classes,
        state.image_shape,
        state.step,
        path,
        state.metrics,
        ema=state.generator_ema is not None,
    )


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


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W) for C = 1, (N, H, W, C) otherwise.

    The only place where generated pixels are converted: round((x + 1) * 127.5), clipped.
    """
    pixels = ((images.detach().cpu().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).numpy()  # (N, C, H, W) -> (N, H, W, C)
    return pixels[..., 0] if pixels.shape[3] == 1 else pixels


def make_grid(
    pixels: np.ndarray, ncol: int, titles: list[str] | None = None, scale: int = 3, pad: int = 2
) -> Image.Image:
    """Lays uint8 images (N, H, W[, C]) out in rows of `ncol`, with an optional title each."""
    n = len(pixels)
    if n == 0:
        raise UsageError("make_grid needs at least one image")
    rows = -(-n // ncol)
    mode = "L" if pixels.ndim == 3 else "RGB"
    height, width = pixels.shape[1] * scale, pixels.shape[2] * scale
    title_h = 16 if titles else 0
    cell_w, cell_h = width + pad, height + pad + title_h
    canvas = Image.new(mode, (ncol * cell_w + pad, rows * cell_h + pad), color=255 if titles else 0)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12) if titles else None
    for i, array in enumerate(pixels):
        x, y = pad + (i % ncol) * cell_w, pad + (i // ncol) * cell_h
        tile = Image.fromarray(array, mode).resize((width, height), Image.Resampling.NEAREST)
        canvas.paste(tile, (x, y + title_h))
        if titles:
            draw.text((x + width // 2, y + title_h // 2), titles[i], fill=0, font=font, anchor="mm")
    return canvas


def grid_png(images: torch.Tensor, ncol: int) -> bytes:
    """PNG bytes of a grid of float images in [-1, 1] (for web responses and HTML reports)."""
    buffer = io.BytesIO()
    make_grid(to_uint8(images), ncol=ncol).save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(
    images: torch.Tensor | np.ndarray, path: str | Path, ncol: int, titles: list[str] | None = None
) -> Path:
    """Saves float images in [-1, 1] (N, C, H, W) or uint8 images as one PNG grid."""
    pixels = to_uint8(images) if isinstance(images, torch.Tensor) else images
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(pixels, ncol, titles).save(path)
    return path


def fixed_noise_grid(
    model: nn.Module, z: torch.Tensor, labels: torch.Tensor | None, path: str | Path
) -> Path:
    """The run's progress grid: 5x5 for a GAN; one panel per class, titled, for a CGAN."""
    images = sample(model, len(z), labels=labels, z=z, device=z.device)
    if labels is None:
        return save_grid(images, path, ncol=5)
    titles = [f"Digit: {k}" for k in labels.tolist()]
    return save_grid(images, path, ncol=5 if len(z) == 10 else min(len(z), 10), titles=titles)
