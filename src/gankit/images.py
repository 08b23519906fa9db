"""Images as pixels: the conversions between uint8 pixels and [-1, 1] floats (each in exactly
one function), and grids laid out with Pillow.

Grids are drawn with numpy and Pillow in a few lines, so that gankit does without torchvision
(whose wheels do not install beside every torch build).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from gankit.errors import UsageError


def as_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in 0..255 -> float32 in [-1, 1], x / 127.5 - 1 (the one conversion of
    pixels to images); float tensors are taken to be images already and returned as they are.
    Keeps the tensor's shape and memory layout."""
    if pixels.is_floating_point():
        return pixels
    return pixels.float() / 127.5 - 1.0


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
