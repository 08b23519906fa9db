"""Training the domain classifiers (`gankit classifier train`), with fixed seeds.

Recipe: AdamW with a one-cycle schedule, label smoothing 0.1, batch 128, and random affine
augmentation (small rotation, scale and shift; horizontal flips for Fashion-MNIST).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from gankit._version import __version__
from gankit.checkpoint import atomic_save
from gankit.data import load_dataset
from gankit.errors import UsageError
from gankit.metrics.features import EXTRACTORS, DomainClassifier

logger = logging.getLogger(__name__)

EPOCHS = {"mnist-sample": 20, "mnist": 4, "fashion-mnist": 5}  # 600-2,400 steps each


@dataclass
class ClassifierResult:
    """A trained classifier and its figures.

    Attributes:
        model: the classifier (eval mode).
        heldout_accuracy: accuracy on the held-out images (None when none were held out).
        heldout: what was held out, in words.
        epochs: passes over the training images.
    """

    model: DomainClassifier
    heldout_accuracy: float | None
    heldout: str
    epochs: int


def augment(images: torch.Tensor, generator: torch.Generator, flip: bool) -> torch.Tensor:
    """Per image: a shift of up to 2 pixels; digits also rotate (10 degrees) and scale (10%),
    clothes are mirrored instead (a mirrored digit is not a digit; a mirrored shirt is)."""
    n = images.shape[0]
    uniform = torch.rand(n, 4, generator=generator) * 2 - 1  # (N, 4) in [-1, 1]
    angle = uniform[:, 0] * math.radians(0.0 if flip else 10.0)
    scale = 1.0 + (0.0 if flip else 0.1) * uniform[:, 1]
    shift = uniform[:, 2:] * (2.0 * 2 / images.shape[-1])  # 2 pixels in [-1, 1] coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )  # (N, 2, 3)
    if flip:
        mirrored = torch.rand(n, generator=generator) < 0.5
        theta[mirrored, :, 0] *= -1
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images + 1, grid, align_corners=False, padding_mode="zeros") - 1


@torch.no_grad()
def accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), 1000):
        logits = model(images[start : start + 1000])
        correct += (logits.argmax(1) == labels[start : start + 1000]).sum().item()
    return correct / len(images)


def fit(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int,
    seed: int,
    flip: bool,
    batch_size: int = 128,
) -> DomainClassifier:
    """Trains a DomainClassifier on float images (N, 1, 28, 28) in [-1, 1]."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = DomainClassifier(num_classes)
    steps_per_epoch = math.ceil(len(images) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * steps_per_epoch
    )
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(images), batch_size):
            idx = order[start : start + batch_size]
            batch = augment(images[idx], generator, flip)
            loss = F.cross_entropy(model(batch), labels[idx], label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        logger.info("epoch %d/%d: loss %.4f", epoch + 1, epochs, total / len(images))
    return model.eval()


def stratified_split(labels: torch.Tensor, per_class: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Indices (train, held_out) holding out `per_class` random images of every class."""
    generator = torch.Generator().manual_seed(seed)
    held = []
    for k in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == k).squeeze(1)
        held.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    held_out = torch.cat(held)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held_out] = False
    return torch.nonzero(mask).squeeze(1), held_out


def train_classifier(
    dataset: str, data_dir: str | None = None, epochs: int | None = None, seed: int = 0
) -> ClassifierResult:
    """Trains the domain classifier of `dataset` and measures it on held-out images.

    `mnist-sample`: held-out accuracy on a stratified 1,000 (100 per class), then the returned
    model is retrained on all 5,000 with the same recipe. `mnist` and `fashion-mnist`: trained
    on the train split, measured on the test split.
    """
    if dataset not in EXTRACTORS:
        raise UsageError(f"no domain classifier for {dataset!r}; choose from {sorted(EXTRACTORS)}")
    epochs = epochs or EPOCHS[dataset]
    flip = dataset == "fashion-mnist"
    train = load_dataset(dataset, "train", data_dir)
    if dataset == "mnist-sample":
        train_idx, held_idx = stratified_split(train.labels, 100, seed)
        model = fit(train.images[train_idx], train.labels[train_idx], 10, epochs, seed, flip)
        acc = accuracy(model, train.images[held_idx], train.labels[held_idx])
        logger.info("held-out accuracy (stratified 1,000): %.4f; retraining on all 5,000", acc)
        model = fit(train.images, train.labels, 10, epochs, seed, flip)
        return ClassifierResult(
            model, acc, "stratified 1,000 of mnist-sample (100 per class)", epochs
        )
    model = fit(train.images, train.labels, train.num_classes, epochs, seed, flip)
    test = load_dataset(dataset, "test", data_dir)
    acc = accuracy(model, test.images, test.labels)
    logger.info("test accuracy: %.4f", acc)
    return ClassifierResult(model, acc, f"{dataset} test split ({len(test)} images)", epochs)


def save_classifier(result: ClassifierResult, dataset: str, path: str | Path, seed: int) -> Path:
    """Writes the weights in float16 (half the size; features change by < 1e-3) with their info."""
    state = {
        k: (v.half() if v.is_floating_point() else v) for k, v in result.model.state_dict().items()
    }
    info = {
        "dataset": dataset,
        "heldout_accuracy": result.heldout_accuracy,
        "heldout": result.heldout,
        "epochs": result.epochs,
        "seed": seed,
        "command": f"gankit classifier train --dataset {dataset} --seed {seed}",
        "version": __version__,
    }
    payload = {
        "extractor": EXTRACTORS[dataset][0],
        "num_classes": result.model.head[1].out_features,
        "state_dict": state,
        "info": info,
    }
    atomic_save(payload, path)
    return Path(path)
