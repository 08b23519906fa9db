"""The metric suite: generated (or real) images in, one flat dict of figures out."""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.data import load_dataset
from gankit.errors import MissingFileError, UsageError
from gankit.images import to_uint8
from gankit.metrics.distances import (
    FrechetDistanceUndefined,
    density_coverage,
    frechet_distance,
    gaussian_stats,
    inception_score,
    kernel_distance,
    precision_recall,
)
from gankit.metrics.features import (
    EXTRACTORS,
    Extractor,
    extract,
    load_extractor,
    load_inception,
)
from gankit.metrics.reference import (
    COPY_PERCENTILE,
    SUBSET,
    RealReference,
    load_reference,
    nearest_distances,
)

logger = logging.getLogger(__name__)

EXTRACTOR_KINDS = ("domain", "inception")
DEFAULT_N, DEFAULT_SEED = 10_000, 0  # `gankit evaluate RUN` and the report sample these
COVERED_FRACTION = 0.02  # a class counts as covered with at least 2% of the samples
CLASSIFIER_KEYS = ("is", "classes_covered", "class_hist", "cond_acc", "cond_acc_per_class")


@dataclass
class Evaluator:
    """An extractor and the reference statistics it is compared against, loaded once."""

    dataset: str
    extractor: Extractor
    reference: RealReference

    @classmethod
    def load(
        cls,
        dataset: str,
        weights: str | None = None,
        data_dir: str | None = None,
        split: str = "train",
        extractor: str = "domain",
        device: str = "cpu",
    ) -> Evaluator:
        """`extractor`: "domain" (the dataset's classifier; `weights` its file) or "inception"
        (FID-Inception; `weights` pytorch-fid's file)."""
        if dataset not in EXTRACTORS:
            raise UsageError(
                f"no domain classifier for dataset {dataset!r}; choose from {sorted(EXTRACTORS)}"
            )
        if extractor not in EXTRACTOR_KINDS:
            raise UsageError(f"unknown extractor {extractor!r}; choose from {EXTRACTOR_KINDS}")
        if extractor == "inception":
            loaded = load_inception(weights, device)
        else:
            loaded = load_extractor(dataset, weights, device)
        return cls(dataset, loaded, load_reference(dataset, split, loaded, data_dir))

    def __call__(
        self, images: np.ndarray | torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0
    ) -> dict[str, Any]:
        return evaluate_images(images, labels, self.extractor, self.reference, seed)


def check_images(images: np.ndarray | torch.Tensor, source: str) -> None:
    """The extractors read 1-channel 28x28 images: uint8 (N, 28, 28) or float (N, 1, 28, 28)."""
    shape = tuple(images.shape)
    if len(shape) == 3 and shape[1:] == (28, 28):
        return
    if len(shape) == 4 and shape[1:] == (1, 28, 28):
        return
    raise UsageError(
        f"{source}: images of shape {shape}; the domain classifiers read 1-channel 28x28 "
        "images, uint8 (N, 28, 28)"
    )


def evaluate_images(
    images: np.ndarray | torch.Tensor,
    labels: torch.Tensor | None,
    extractor: Extractor,
    reference: RealReference,
    seed: int = 0,
) -> dict[str, Any]:
    """All figures for a set of images (uint8 (N, 28, 28) or float (N, 1, 28, 28) in [-1, 1]).

    Args:
        images: the images to judge.
        labels: int64 (N,) requested classes (conditional model), else None.
        extractor: the domain classifier.
        reference: real statistics in that classifier's space.
        seed: for the random subsets of KID and precision/recall.
    """
    n = len(images)
    if n < 2:
        raise UsageError(f"need at least 2 images to evaluate, got {n}")
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        # one number per generator: quantised exactly as a saved PNG or .npz would be, so a run,
        # its samples file and --eval-every score the same images alike
        images = to_uint8(images)
    features, logits = extract(extractor, images)
    mu, sigma = gaussian_stats(features)
    generator = torch.Generator().manual_seed(seed)
    kid, kid_std = kernel_distance(reference.subset, features, generator=generator)
    m = min(n, SUBSET, len(reference.subset))
    fake_subset = features[torch.randperm(n, generator=generator)[:m]]
    precision, recall = precision_recall(reference.subset[:m], fake_subset, k=3)
    density, coverage = density_coverage(reference.subset[:m], fake_subset, k=5)
    fid, fid_note = frechet_or_note(mu, sigma, reference.mu, reference.sigma)
    result: dict[str, Any] = {
        "fid": fid,
        "fid_note": fid_note,
        "kid": kid,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
        "intra_fid": None,
        "intra_fid_note": "needs labelled samples",
        "copy_rate": copy_rate(features, reference),
        "copy_percentile": COPY_PERCENTILE,
        "extractor": extractor.name,
        "extractor_weights": extractor.weights_id,
        "reference": reference.name,
        "n": n,
    }
    if logits is None:  # Inception: no class logits, per-class statistics or training features
        note = "computed with the domain classifier only (--extractor domain)"
        result.update(dict.fromkeys(CLASSIFIER_KEYS), classifier_note=note, intra_fid_note=note)
        result["copy_rate_note"] = note
        return result
    predicted = logits.argmax(1)
    num_classes = logits.shape[1]
    hist = torch.bincount(predicted, minlength=num_classes).double() / n
    result.update(
        {
            "is": inception_score(logits, seed=seed)[0],
            "classes_covered": int((hist >= COVERED_FRACTION).sum()),
            "class_hist": [round(v, 6) for v in hist.tolist()],
            "cond_acc": None,
            "cond_acc_per_class": None,
        }
    )
    if labels is not None:
        result.update(conditional_figures(features, predicted, labels, reference, num_classes))
    return result


def conditional_figures(
    features: torch.Tensor,
    predicted: torch.Tensor,
    labels: torch.Tensor,
    reference: RealReference,
    num_classes: int,
) -> dict[str, Any]:
    """cond_acc, its per-class values, and intra-class FID (mean over the classes asked for)."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if len(labels) != len(features):
        raise UsageError(f"{len(labels)} labels for {len(features)} images")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise UsageError(
            f"labels must be in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}"
        )
    correct = (predicted == labels).double()
    counts = torch.bincount(labels, minlength=num_classes)
    per_class = [
        float(correct[labels == k].mean()) if counts[k] else None for k in range(num_classes)
    ]
    asked = [k for k in range(num_classes) if counts[k]]
    dim, fewest = features.shape[1], min(asked, key=lambda k: int(counts[k]))
    intra, note = None, None
    if counts[fewest] < dim:  # below the feature dimension the class covariance is singular
        note = (
            f"needs >= {dim} samples per class (the feature dimension); class {fewest} has "
            f"{int(counts[fewest])}"
        )
    else:
        values = []
        for k in asked:
            if np.isnan(reference.class_mu[k]).any():
                note = f"class {k} has fewer than 2 images in the reference {reference.name}"
                break
            mu, sigma = gaussian_stats(features[labels == k])
            value, note = frechet_or_note(
                mu, sigma, reference.class_mu[k], reference.class_sigma[k]
            )
            if value is None:
                note = f"class {k}: {note}"
                break
            values.append(value)
        intra = float(np.mean(values)) if len(values) == len(asked) else None
    return {
        "cond_acc": float(correct.mean()),
        "cond_acc_per_class": per_class,
        "intra_fid": intra,
        "intra_fid_note": note,
    }


def copy_rate(features: torch.Tensor, reference: RealReference) -> float | None:
    """Share of samples nearer their nearest training image (in feature space) than the
    COPY_PERCENTILE-th percentile of the training images' own leave-one-out nearest distances:
    about COPY_PERCENTILE / 100 for new images from the data's distribution, 1 for copies."""
    if reference.train_features is None or reference.copy_threshold is None:
        return None
    nearest = nearest_distances(features, reference.train_features)
    return float((nearest < reference.copy_threshold).double().mean())


def frechet_or_note(
    mu: np.ndarray, sigma: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray
) -> tuple[float | None, str | None]:
    """The Fréchet distance, or (None, why) when it is undefined for these covariances."""
    try:
        return frechet_distance(mu, sigma, mu_ref, sigma_ref), None
    except FrechetDistanceUndefined as error:
        logger.warning("FID not reported: %s", error)
        return None, str(error)


def real_floor_images(
    dataset: str, n: int, data_dir: str | None = None, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Real images to score as if generated: what a perfect generator would reach.

    `mnist-sample` has no held-out split: a bootstrap of its 5,000 (which the reference also
    uses), so its floor is optimistic. Other datasets: the test split (held out), first n.
    """
    if dataset == "mnist-sample":
        real = load_dataset(dataset)
        idx = torch.randint(len(real), (n,), generator=torch.Generator().manual_seed(seed))
        return real.batch(idx), real.labels[idx], "bootstrap of the 5,000 (optimistic)"
    real = load_dataset(dataset, "test", data_dir)
    return real.batch(torch.arange(min(n, len(real)))), real.labels[:n], f"{dataset} test split"


def load_npz_samples(path: str | Path) -> tuple[np.ndarray, torch.Tensor | None]:
    """`images` uint8 (N, 28, 28) and optional `labels` (N,) from an npz, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive.files:
                raise UsageError(f"{path}: no 'images' array (has {archive.files})")
            images = archive["images"]
            labels = archive["labels"] if "labels" in archive.files else None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise UsageError(f"{path}: not a readable .npz file ({error})") from error
    except UsageError:
        raise
    except ValueError as error:  # numpy's error for a malformed array inside the archive
        raise UsageError(f"{path}: not a readable .npz file ({error})") from error
    if images.dtype != np.uint8:
        raise UsageError(f"{path}: images must be uint8 in 0..255, got {images.dtype}")
    if not (images.ndim == 4 and images.shape[-1] == 3):  # stacked-mnist's are checked there
        check_images(images, str(path))
    if labels is not None:
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise UsageError(
                f"{path}: labels must be integers of shape ({len(images)},), got {labels.shape}"
            )
        labels = torch.from_numpy(labels.astype(np.int64))
    return images, labels
