"""Loading a trained generator: from a run's checkpoint or from a safetensors export.

Below both `sampling` and `export`: whoever samples or exports a generator loads it here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit.checkpoint import load_checkpoint
from gankit.config import RunConfig
from gankit.errors import UsageError
from gankit.models import build_models
from gankit.run import ExportFolder, RunFolder


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


def load_export(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """A safetensors export as a LoadedGenerator (`gankit.load_generator(DIR)` calls this)."""
    from safetensors.torch import load_file

    folder = ExportFolder(path)
    manifest = folder.read_manifest()
    if not manifest.get("complete"):
        raise UsageError(f"export {str(path)!r} is incomplete (interrupted): export it again")
    if manifest["format"] != "safetensors":
        raise UsageError(
            f"export {str(path)!r} is {manifest['format']}: gankit loads safetensors exports; "
            "read this one with onnxruntime or torch.export.load (see its model_card.md)"
        )
    config = RunConfig.from_dict(json.loads((folder.path / "config.json").read_text()))
    shape = tuple(manifest["image_shape"])
    generator, _ = build_models(config.model, shape, manifest["num_classes"])
    generator.load_state_dict(load_file(str(folder.path / manifest["file"])))
    generator.to(device).eval()
    model_path = folder.path / manifest["file"]
    return LoadedGenerator(
        generator,
        config,
        manifest["num_classes"],
        shape,
        manifest["source"]["step"],
        model_path,
        {},
        ema=manifest["source"]["ema"],
    )
