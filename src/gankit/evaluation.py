"""`gankit.evaluate`: judge a generator, a run or a set of images, beside the real-data floor.

The one path from "something that makes images" to figures: `gankit evaluate`, `gankit export`'s
model card and `gankit report` all call `evaluate`. It samples (balanced labels for a conditional
model, noise from `seed`), scores the images with the dataset's domain classifier (or
FID-Inception), scores as many real images the same way (the floor: what a perfect generator
would reach), and, for a run folder, records both in `RUN/evaluation.json`, where `gankit serve`
and later readers find them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.data import load_dataset
from gankit.errors import UsageError
from gankit.loading import LoadedGenerator, load_generator
from gankit.metrics.features import EXTRACTORS
from gankit.metrics.modes import DEFAULT_SAMPLES, mode_figures
from gankit.metrics.suite import (
    DEFAULT_N,
    DEFAULT_SEED,
    Evaluator,
    check_images,
    load_npz_samples,
    real_floor_images,
)
from gankit.run import RunFolder
from gankit.sampling import sample_balanced

Source = str | Path | LoadedGenerator | np.ndarray | torch.Tensor
STACKED = "stacked-mnist"  # judged by its modes (metrics.modes), not the suite


@dataclass
class Evaluation:
    """What `evaluate` found.

    Attributes:
        result: the figures (FID, KID, precision, recall, ...; see docs/metrics.md), each
            named with its extractor.
        floor: the same figures for real images scored the same way, or None (not asked).
        floor_what: which real images made the floor, or None.
        what: what was judged, in words.
        dataset: the reference dataset.
        step: the iteration of the run or export judged, or None for images.
        images: the images judged: float (N, C, H, W) in [-1, 1] when sampled here, else as given.
        labels: their requested classes (int64 (N,)), or None.
    """

    result: dict[str, Any]
    floor: dict[str, Any] | None
    floor_what: str | None
    what: str
    dataset: str
    step: int | None = None
    images: Any = field(default=None, repr=False)
    labels: torch.Tensor | None = field(default=None, repr=False)


def evaluate(
    source: Source,
    *,
    labels: torch.Tensor | None = None,
    dataset: str | None = None,
    n: int | None = None,
    seed: int = DEFAULT_SEED,
    checkpoint: str = "latest",
    data_dir: str | None = None,
    extractor: str = "domain",
    weights: str | None = None,
    floor: bool = True,
    record: bool | None = None,
    device: str | torch.device = "cpu",
    evaluator: Evaluator | None = None,
) -> Evaluation:
    """Scores a generator's samples (or given images) and, by default, the real-data floor.

    Args:
        source: a run folder or safetensors export (its `checkpoint` is loaded), a
            `LoadedGenerator`, a samples `.npz` (`images` uint8 (N, H, W), optional `labels`),
            or images: uint8 (N, 28, 28) or float (N, 1, 28, 28) in [-1, 1].
        labels: int64 (N,) requested classes of given images (conditional accuracy), else None.
        dataset: the reference dataset (default: the run's); one with a domain classifier.
        n: images to sample from a generator, 2..1e6 (ignored for given images); default
            10,000, and 26,000 for stacked-mnist (the VEEGAN/PacGAN protocol).
        seed: noise and metric-subset seed, 0..2^63-1.
        checkpoint: "latest", "best" or a checkpoint path, for a run folder.
        data_dir: folder of the dataset's IDX files (default: the run's).
        extractor: "domain" (the dataset's classifier) or "inception" (FID-Inception).
        weights: the extractor's weights file (default: the shipped or cached one).
        floor: also score real images: the held-out split, or a bootstrap of mnist-sample.
        record: write `evaluation.json` into the run folder; default: when `source` is one.
        device: where the generator and the extractor run.
        evaluator: an `Evaluator` already loaded for this dataset, to reuse.

    Raises:
        UsageError: an unknown dataset, a bad `n`, images of the wrong shape, labels that do
            not match.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= 10**6):
        raise UsageError(f"n must be an integer in 2..1e6, got {n!r}")
    images, step, what, run = None, None, "images", None
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        run = RunFolder(source) if RunFolder(source).is_run() else None
        folder, source = source, load_generator(source, checkpoint, device)
        what = f"{folder} (iteration {source.step})"
    if isinstance(source, LoadedGenerator):
        dataset = dataset or source.config.data.dataset
        data_dir = data_dir if data_dir is not None else source.config.data.data_dir
        step = source.step
        if n is None:
            n = DEFAULT_SAMPLES if dataset == STACKED else DEFAULT_N
        images, labels = sample_balanced(source.model, n, seed, device)
        what = (what if what != "images" else f"generator (iteration {step})") + f", n={n}"
    elif isinstance(source, (str, Path)):
        images, labels = load_npz_samples(source)
        what = str(source)
    else:
        images = source
    if not dataset:
        raise UsageError("give the reference dataset (dataset=...) to compare the images against")
    if dataset == STACKED:
        found = evaluate_modes(images, data_dir, weights, floor, device, evaluator)
        found.what, found.step, found.labels = what, step, labels
    else:
        found = evaluate_figures(
            images, labels, dataset, seed, data_dir, extractor, weights, floor, device, evaluator
        )
        found.what, found.step = what, step
    if run is not None and (record is None or record):
        run.write_evaluation(
            {"step": step, "checkpoint": checkpoint, "seed": seed, "result": found.result,
             "floor": found.floor, "floor_what": found.floor_what}
        )  # fmt: skip
    return found


def evaluate_figures(
    images: Any,
    labels: torch.Tensor | None,
    dataset: str,
    seed: int,
    data_dir: str | None,
    extractor: str,
    weights: str | None,
    floor: bool,
    device: str | torch.device,
    evaluator: Evaluator | None,
) -> Evaluation:
    """The metric suite of `metrics.suite`, and the same for as many real images."""
    if dataset not in EXTRACTORS:
        raise UsageError(
            f"no domain classifier for dataset {dataset!r}; choose from {sorted(EXTRACTORS)}"
        )
    check_images(images, "the images")  # 1-channel 28x28: what the judges read
    if evaluator is None:
        evaluator = Evaluator.load(
            dataset, weights, data_dir, extractor=extractor, device=str(device)
        )
    result = evaluator(images, labels, seed)
    floor_figures, floor_what = None, None
    if floor:
        real, real_labels, floor_what = real_floor_images(dataset, len(images), data_dir)
        floor_figures = evaluator(real, real_labels if labels is not None else None, seed)
    return Evaluation(result, floor_figures, floor_what, "images", dataset, None, images, labels)


def evaluate_modes(
    images: Any,
    data_dir: str | None,
    weights: str | None,
    floor: bool,
    device: str | torch.device,
    evaluator: Evaluator | None,
) -> Evaluation:
    """Stacked MNIST: modes covered and KL to uniform, each channel read by the MNIST judge,
    and the same for as many real stacked images (drawn with seed 1, not training's 0)."""
    judge = evaluator or Evaluator.load("mnist-sample", weights, device=str(device))
    result = mode_figures(images, judge.extractor, judge.reference)
    floor_figures, floor_what = None, None
    if floor:
        real = load_dataset(STACKED, data_dir=data_dir, size=len(images), seed=1)
        floor_figures = mode_figures(real.images, judge.extractor, judge.reference)
        floor_what = f"{len(images):,} real stacked triples (seed 1)"
    return Evaluation(result, floor_figures, floor_what, "images", STACKED, None, images, None)
