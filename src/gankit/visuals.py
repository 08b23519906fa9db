"""Pictures people look at: latent interpolations, class morphs, GIFs, and the progress GIF.

GIFs are written with Pillow (no imageio dependency); plots live in `plots.py`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from gankit.errors import MissingFileError, UsageError
from gankit.images import make_grid, to_uint8
from gankit.models.conditioning import check_labels
from gankit.sampling import draw_noise, sample


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of vectors a, b (D,) at fractions t (T,) -> (T, D)."""
    return a[None] + t[:, None] * (b - a)[None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents) -> (T, D).

    Keeps the norm typical of Gaussian samples, which linear interpolation shrinks midway.
    """
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:  # (anti-)parallel: fall back to the linear path
        return lerp(a, b, t)
    sin = torch.sin(omega)
    return (torch.sin((1 - t) * omega)[:, None] * a + torch.sin(t * omega)[:, None] * b) / sin


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights are (the noise is drawn on the CPU and moved there)."""
    return next(model.parameters()).device


def interpolate(
    model: nn.Module,
    seed_a: int,
    seed_b: int,
    steps: int = 10,
    label: int | None = None,
    spherical: bool = True,
    truncation: float | None = None,
) -> torch.Tensor:
    """Images along the latent path between the noise of two seeds (endpoints included).

    Returns:
        float (steps, C, H, W) in [-1, 1]; the first and last equal `sample` with those seeds.
    """
    if steps < 2:
        raise UsageError(f"steps must be >= 2, got {steps}")
    dim = model.latent_dim
    z_a = draw_noise(1, dim, torch.Generator().manual_seed(seed_a), truncation)[0]
    z_b = draw_noise(1, dim, torch.Generator().manual_seed(seed_b), truncation)[0]
    t = torch.linspace(0.0, 1.0, steps)
    z = (slerp if spherical else lerp)(z_a, z_b, t)
    z[0], z[-1] = z_a, z_b  # exact endpoints despite rounding
    labels = None if label is None else torch.full((steps,), label, dtype=torch.int64)
    return sample(model, steps, labels=labels, z=z, device=model_device(model))


def class_morph(
    model: nn.Module,
    seed: int,
    label_a: int,
    label_b: int,
    steps: int = 10,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """One noise vector, with the class condition mixed from label_a to label_b: `steps`
    images from t = 0 to 1, or one image per given mixing weight t in [0, 1] (`weights`).

    The labels are soft (N, C) weights: every conditioning method mixes the class embedding,
    one-hot vector or conditional-BatchNorm parameters accordingly.
    """
    classes = getattr(model, "num_classes", 0)
    check_labels(torch.tensor([label_a, label_b]), classes)
    t = torch.linspace(0.0, 1.0, steps) if weights is None else weights.float().flatten()
    if not bool(((t >= 0) & (t <= 1)).all()):
        raise UsageError(f"morph weights must be in [0, 1], got {t.tolist()}")
    steps = len(t)
    soft = torch.zeros(steps, classes)
    soft[:, label_a] += 1 - t
    soft[:, label_b] += t
    z = draw_noise(1, model.latent_dim, torch.Generator().manual_seed(seed)).repeat(steps, 1)
    return sample(model, steps, labels=soft, z=z, device=model_device(model))


def save_strip(images: torch.Tensor, path: str | Path) -> Path:
    """A one-row PNG of float images in [-1, 1]."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(to_uint8(images), ncol=len(images)).save(path)
    return path


def save_gif(
    frames: list[Image.Image] | torch.Tensor, path: str | Path, ms: int = 120, scale: int = 4
) -> Path:
    """An animated GIF, looping, from PIL images or float images (N, C, H, W) in [-1, 1]."""
    if isinstance(frames, torch.Tensor):
        pixels = to_uint8(frames)
        mode = "L" if pixels.ndim == 3 else "RGB"
        frames = [
            Image.fromarray(p, mode).resize((p.shape[1] * scale, p.shape[0] * scale), Image.NEAREST)
            for p in pixels
        ]
    if not frames:
        raise UsageError("a GIF needs at least one frame")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms, loop=0)
    return path


def progress_frames(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(iteration, path) of the run's fixed-noise grids images/N.png, in training order."""
    found = []
    for path in (Path(run_dir) / "images").glob("*.png"):
        match = re.fullmatch(r"(\d+)\.png", path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def progress_gif(run_dir: str | Path, out: str | Path, max_frames: int = 60) -> Path:
    """The training-progress GIF: the fixed-noise grids in order (at most `max_frames`, evenly
    spaced, always ending on the last), each stamped with its iteration."""
    frames = progress_frames(run_dir)
    if not frames:
        raise MissingFileError(f"run {str(run_dir)!r} has no grids in images/")
    keep = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round())
    images = []
    for i in keep.astype(int):
        step, path = frames[i]
        with Image.open(path) as image:
            frame = image.convert("RGB")
        canvas = Image.new("RGB", (frame.width, frame.height + 18), "white")
        canvas.paste(frame, (0, 18))
        ImageDraw.Draw(canvas).text(
            (4, 2), f"iteration {step}", fill="black", font=ImageFont.load_default(size=13)
        )
        images.append(canvas)
    return save_gif(images, out, ms=150)
