"""Does the metric suite respond to what it should? (After Heusel et al. 2017, Fig. 1.)

Real held-out MNIST digits, scored against a reference built from the other images, are
disturbed step by step: salt-and-pepper speckle, Gaussian blur, and dropping classes. FID and
KID must grow with every step, recall must fall as classes go, and the classifier must still
read lightly speckled digits as their digits (`cond_acc`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gankit.data import load_dataset
from gankit.metrics.classifier import stratified_split
from gankit.metrics.corruptions import blur, speckle
from gankit.metrics.features import Extractor, extract, load_extractor
from gankit.metrics.reference import build_reference
from gankit.metrics.suite import evaluate_images

SPECKLE = (0.0, 0.01, 0.02, 0.05, 0.10)  # share of pixels
BLUR = (0.0, 0.5, 1.0, 2.0)  # sigma, pixels (0: none)
CLASSES_KEPT = (10, 7, 4, 1)  # the first k classes of the held-out images


@dataclass
class CalibrationRow:
    """One disturbance at one strength, and the figures of the disturbed held-out images."""

    disturbance: str
    strength: float
    figures: dict[str, Any]


def calibration(
    extractor: Extractor | None = None, per_class: int = 100, seed: int = 0
) -> list[CalibrationRow]:
    """Scores `mnist-sample`'s stratified held-out images (`per_class` of each digit) against
    a reference of the other images, clean and under each disturbance of SPECKLE, BLUR and
    CLASSES_KEPT. Dropping classes keeps the held-out images of classes 0..k-1 (100 k images).
    """
    extractor = extractor or load_extractor("mnist-sample")
    real = load_dataset("mnist-sample")
    train_idx, held_idx = stratified_split(real.labels, per_class, seed)
    features, _ = extract(extractor, real.images[train_idx])
    reference = build_reference(
        "mnist-sample/4,000 not held out", features, real.labels[train_idx], 10, features
    )
    images, labels = real.images[held_idx], real.labels[held_idx]

    def score(batch: torch.Tensor, batch_labels: torch.Tensor) -> dict[str, Any]:
        return evaluate_images(batch, batch_labels, extractor, reference, seed)

    rows = []
    for fraction in SPECKLE:
        noisy = speckle(images, fraction, torch.Generator().manual_seed(seed))
        rows.append(CalibrationRow("speckle", fraction, score(noisy, labels)))
    for sigma in BLUR:
        blurred = blur(images, sigma) if sigma else images
        rows.append(CalibrationRow("blur", sigma, score(blurred, labels)))
    for k in CLASSES_KEPT:
        kept = labels < k
        rows.append(CalibrationRow("classes kept", k, score(images[kept], labels[kept])))
    return rows
