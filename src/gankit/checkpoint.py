"""Checkpoint files: what they hold, atomic writes and `weights_only` loads.

Where they live in a run folder, and which one is "latest", is `gankit.run`'s business.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gankit._version import __version__
from gankit.errors import CheckpointError, MissingFileError

FORMAT = 2  # 2: torch.optim optimizers and D's own dropout stream ("dropout" in rng)
READABLE_FORMATS = (1, 2)  # 1 resumes with a warning: its dropout drew from the global RNG


@dataclass
class Checkpoint:
    """Everything a checkpoint holds.

    Attributes:
        step: iterations completed.
        config: the resolved run configuration (as in config.json).
        image_shape: (C, H, W) the generator produces.
        num_classes: classes of a conditional model, 0 for an unconditional one.
        generator, discriminator, generator_ema: state dicts (`generator_ema` may be None).
        opt_g, opt_d: optimizer state dicts.
        rng: RNG states ("training", "dropout", "torch", optionally "cuda"), or
            {"ranks": [...]} holding one such dict per rank.
        fixed_noise: {"z": (N, latent_dim), "labels": (N,) or None}.
        metrics: the last logged metrics row and evaluation figures.
        version: the gankit version that wrote it.
    """

    step: int
    config: dict[str, Any]
    image_shape: tuple[int, int, int]
    num_classes: int
    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor]
    opt_g: dict[str, Any]
    opt_d: dict[str, Any]
    rng: dict[str, Any]
    fixed_noise: dict[str, torch.Tensor | None]
    metrics: dict[str, Any]
    generator_ema: dict[str, torch.Tensor] | None = None
    version: str = __version__


def atomic_save(
    obj: Any, path: str | Path, before_rename: Callable[[], None] | None = None
) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`.

    A reader (or a crash at any moment) sees either the old file or the complete new one.
    `before_rename` runs between the two (a test hook: the worst moment for a crash).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(
    checkpoint: Checkpoint, path: str | Path, before_rename: Callable[[], None] | None = None
) -> None:
    payload = {"format": FORMAT, **checkpoint.__dict__}
    payload["image_shape"] = list(checkpoint.image_shape)
    atomic_save(payload, path, before_rename)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Loads a checkpoint with `weights_only=True` (no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt files
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not a gankit checkpoint of format "
            f"{' or '.join(map(str, READABLE_FORMATS))}"
        )
    payload.pop("format")
    payload["image_shape"] = tuple(payload["image_shape"])
    return Checkpoint(**payload)
