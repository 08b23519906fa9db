"""Training the domain classifiers (`gankit classifier train`), with fixed seeds.

Recipe: AdamW with a one-cycle schedule, batch 128, random affine augmentation (rotation, scale
and shift for digits; shift and horizontal flips for clothes) and corruption augmentation
(speckle, Gaussian noise, blur; one-pixel erosion and dilation for digits), so that a clearly
drawn digit under a generator's salt-and-pepper speckle is still read as its digit. No label
smoothing: it caps the classifier's confidence, and with it the Inception Score of real data.
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
from gankit.metrics.corruptions import ROBUSTNESS, affine, corrupt_for_training
from gankit.metrics.distances import inception_score
from gankit.metrics.features import EXTRACTORS, DomainClassifier

logger = logging.getLogger(__name__)

EPOCHS = {"mnist-sample": 40, "mnist": 4, "fashion-mnist": 10}  # 1,250-4,700 steps each


@dataclass
class ClassifierResult:
    """A trained classifier and its figures.

    Attributes:
        model: the classifier (eval mode).
        heldout_accuracy: accuracy on the held-out images (None when none were held out).
        heldout: what was held out, in words.
        epochs: passes over the training images.
        robustness: held-out accuracy, clean and under each corruption (see `robustness`).
        heldout_is: Inception Score of the held-out real images in this classifier's logits.
    """

    model: DomainClassifier
    heldout_accuracy: float | None
    heldout: str
    epochs: int
    robustness: dict[str, float]
    heldout_is: float


@dataclass(frozen=True)
class Recipe:
    """How a classifier is trained (beyond optimiser and schedule, which are fixed).

    Attributes:
        label_smoothing: cross-entropy label smoothing in [0, 1).
        corruptions: train on speckle, noise, blur (and erosion/dilation for digits) too.
        max_rotation: digits rotate by up to this many degrees either way.
    """

    label_smoothing: float = 0.0
    corruptions: bool = True
    max_rotation: float = 15.0


# "robust" is the shipped recipe; "v0.2" the one before it (kept to measure the difference)
RECIPES = {"robust": Recipe(), "v0.2": Recipe(0.1, False, 10.0)}


def augment(
    images: torch.Tensor, generator: torch.Generator, flip: bool, recipe: Recipe = RECIPES["robust"]
) -> torch.Tensor:
    """Per image: a shift of up to 2 pixels; digits also rotate (recipe.max_rotation) and scale
    (10%), clothes are mirrored instead (a mirrored digit is not a digit; a mirrored shirt is);
    then the recipe's corruptions."""
    n = images.shape[0]
    uniform = torch.rand(n, 4, generator=generator) * 2 - 1  # (N, 4) in [-1, 1]
    degrees = uniform[:, 0] * (0.0 if flip else recipe.max_rotation)
    scale = 1.0 + (0.0 if flip else 0.1) * uniform[:, 1]
    mirror = torch.rand(n, generator=generator) < 0.5 if flip else None
    out = affine(images, degrees, scale, uniform[:, 2:] * 2.0, mirror)
    if recipe.corruptions:
        out = corrupt_for_training(out, generator, strokes=not flip)
    return out


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
    recipe: Recipe = RECIPES["robust"],
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
            batch = augment(images[idx], generator, flip, recipe)
            loss = F.cross_entropy(
                model(batch), labels[idx], label_smoothing=recipe.label_smoothing
            )
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
        held_images, held_labels = train.images[held_idx], train.labels[held_idx]
        heldout = "stratified 1,000 of mnist-sample (100 per class)"
    else:
        model = fit(train.images, train.labels, train.num_classes, epochs, seed, flip)
        test = load_dataset(dataset, "test", data_dir)
        held_images, held_labels = test.images, test.labels
        heldout = f"{dataset} test split ({len(test)} images)"
    figures = robustness(model, held_images, held_labels, seed)
    with torch.no_grad():
        heldout_is = inception_score(model(held_images), seed=seed)[0]
    logger.info("held-out accuracy: %.4f, IS of held-out images %.2f", figures["clean"], heldout_is)
    if dataset == "mnist-sample":
        logger.info("retraining on all 5,000")
        model = fit(train.images, train.labels, 10, epochs, seed, flip)
    normalise_feature_scale(model, train.images)
    return ClassifierResult(model, figures["clean"], heldout, epochs, figures, heldout_is)


@torch.no_grad()
def normalise_feature_scale(model: DomainClassifier, images: torch.Tensor) -> float:
    """Rescales the feature layer so the features of `images` have a mean variance of 1 per
    dimension, and the head inversely, so the logits (and every prediction) stay the same.

    Features are ReLU(W x + b), and ReLU(c z) = c ReLU(z) for c > 0: scaling W and b by c scales
    the features by c, and the head's weights by 1/c undo it. Without it, FID and KID would grow
    with the square (KID: the cube) of how confident training left the classifier; with it,
    their magnitudes stay comparable between classifiers. Returns c.
    """
    model.eval()
    features = torch.cat(
        [model.features(images[i : i + 1000]) for i in range(0, len(images), 1000)]
    )
    scale = float(features.double().var(0).mean().rsqrt())
    linear, head = model.embed[1], model.head[1]
    linear.weight.mul_(scale)
    linear.bias.mul_(scale)
    head.weight.div_(scale)
    return scale


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
        "robustness": {k: round(v, 4) for k, v in result.robustness.items()},
        "heldout_is": round(result.heldout_is, 3),
        "recipe": "robust",
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


def robustness(
    model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor, seed: int = 0
) -> dict[str, float]:
    """Accuracy on clean images and under each corruption of the robustness table, at each of
    its strengths: {"clean": a, "speckle 0.02": a, ...}. Random corruptions use `seed`."""
    result = {"clean": accuracy(model, images, labels)}
    for name, (strengths, _unit, corrupt) in ROBUSTNESS.items():
        for strength in strengths:
            generator = torch.Generator().manual_seed(seed)
            result[f"{name} {strength}"] = accuracy(
                model, corrupt(images, strength, generator), labels
            )
    return result
