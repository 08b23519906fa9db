"""Checkpoints: atomic writes, `weights_only` loads, and the run-folder layout.

A run folder holds `config.json`, `metrics.jsonl`, `fixed_noise.pt`, `images/N.png` and
`checkpoints/step_NNNNNNN.pt` (plus `best.pt` once evaluation runs).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gankit._version import __version__

FORMAT = 2  # 2: torch.optim optimizers and D's own dropout stream ("dropout" in rng)
READABLE_FORMATS = (1, 2)  # 1 resumes with a warning: its dropout drew from the global RNG
_STEP_FILE = re.compile(r"step_(\d{7})\.pt$")


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


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`.

    A reader (or a crash at any moment) sees either the old file or the complete new one.
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


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> None:
    payload = {"format": FORMAT, **checkpoint.__dict__}
    payload["image_shape"] = list(checkpoint.image_shape)
    atomic_save(payload, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Loads a checkpoint with `weights_only=True` (no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt files
        raise ValueError(f"checkpoint {str(path)!r} cannot be read: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
        raise ValueError(
            f"checkpoint {str(path)!r} is not a gankit checkpoint of format "
            f"{' or '.join(map(str, READABLE_FORMATS))}"
        )
    payload.pop("format")
    payload["image_shape"] = tuple(payload["image_shape"])
    return Checkpoint(**payload)


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's step_*.pt files, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _STEP_FILE.search(p.name))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(run_dir: str | Path, which: str = "latest") -> Path:
    """ "latest", "best" or a path -> the checkpoint file, with a clear error when missing."""
    if which == "latest":
        path = latest_checkpoint(run_dir)
        if path is None:
            raise FileNotFoundError(f"run {str(run_dir)!r} has no checkpoint in checkpoints/")
        return path
    if which == "best":
        path = Path(run_dir) / "checkpoints" / "best.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"run {str(run_dir)!r} has no best.pt (train with --eval-every)"
            )
        return path
    path = Path(which)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {which!r} does not exist")
    return path


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Deletes all but the newest `keep` step_*.pt files (best.pt is never touched)."""
    for path in list_checkpoints(run_dir)[:-keep]:
        path.unlink(missing_ok=True)
