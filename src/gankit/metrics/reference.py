"""Statistics of the real data in a classifier's feature space, computed once and cached.

Cached as `<cache>/reference/<dataset>-<split>-<extractor>-<weights id>.npz`, so a retrained
classifier or another split never reuses stale statistics.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gankit.data import cache_dir, load_dataset
from gankit.metrics.distances import gaussian_stats
from gankit.metrics.features import Extractor, extract

logger = logging.getLogger(__name__)

SUBSET = 5000  # real features kept for precision/recall, density/coverage and KID
COPY_PERCENTILE = 5.0  # a sample nearer its nearest training image than this percentile of the
#                        training images' own leave-one-out nearest distances counts as a copy


@dataclass
class RealReference:
    """Feature statistics of one split of a dataset.

    Attributes:
        name: "<dataset>/<split>".
        n: images the statistics come from.
        mu, sigma: float64 (D,), (D, D).
        class_mu, class_sigma: float64 (C, D), (C, D, D), per true class; None in Inception's
            2,048-d space, where no class of these datasets has enough images for them.
        subset: float32 (min(n, 5000), D), a fixed random subset of the real features.
        train_features: float32 (N_train, D), the training split's features (for the copy
            rate), or None where a reference was built without them.
        copy_threshold: the COPY_PERCENTILE-th percentile of the training images' leave-one-out
            nearest-neighbour distances, or None.
    """

    name: str
    n: int
    mu: np.ndarray
    sigma: np.ndarray
    class_mu: np.ndarray | None
    class_sigma: np.ndarray | None
    subset: torch.Tensor
    train_features: torch.Tensor | None = None
    copy_threshold: float | None = None


def reference_path(dataset: str, split: str, extractor: Extractor) -> Path:
    return cache_dir() / "reference" / f"{dataset}-{split}-{extractor.key}.npz"


def compute_reference(
    dataset: str, split: str, extractor: Extractor, data_dir: str | None = None
) -> RealReference:
    real = load_dataset(dataset, split, data_dir)
    features, _ = extract(extractor, real.images)
    if not extractor.classifies:  # Inception: FID, KID and precision/recall only
        return build_reference(f"{dataset}/{split}", features, None, 0, None)
    if split == "train":
        train_features = features
    else:
        train_features, _ = extract(extractor, load_dataset(dataset, "train", data_dir).images)
    return build_reference(
        f"{dataset}/{split}", features, real.labels, real.num_classes, train_features
    )


def _class_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A class's (mu, sigma), or NaN ones where it has fewer than 2 images (no covariance)."""
    if len(features) >= 2:
        return gaussian_stats(features)
    dim = features.shape[1]
    return np.full(dim, np.nan), np.full((dim, dim), np.nan)


def build_reference(
    name: str,
    features: torch.Tensor,
    labels: torch.Tensor | None,
    num_classes: int,
    train_features: torch.Tensor | None,
) -> RealReference:
    """Statistics of real features (N, D) with their labels (N,) (None: no class statistics);
    `train_features` are the images a generator was trained on (for the copy rate; None:
    no copy rate)."""
    mu, sigma = gaussian_stats(features)
    class_mu = class_sigma = None
    if labels is not None:
        class_stats = [_class_stats(features[labels == k]) for k in range(num_classes)]
        class_mu = np.stack([m for m, _ in class_stats])
        class_sigma = np.stack([s for _, s in class_stats])
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))
    subset = features[order[:SUBSET]]
    if train_features is None:
        return RealReference(name, len(features), mu, sigma, class_mu, class_sigma, subset)
    return RealReference(
        name,
        len(features),
        mu,
        sigma,
        class_mu,
        class_sigma,
        subset,
        train_features.float(),
        copy_threshold(train_features),
    )


def nearest_distances(
    queries: torch.Tensor, pool: torch.Tensor, exclude_self: bool = False, chunk: int = 512
) -> torch.Tensor:
    """Euclidean distance (N,) of each query row to its nearest row of `pool`; with
    `exclude_self` (queries are the pool) a row's own zero distance does not count. Chunks of
    512 queries keep the distance block small (512 x 60,000 floats is 123 MB for Fashion-MNIST's
    training set), so evaluating during training stays within its memory budget."""
    nearest = []
    for start in range(0, len(queries), chunk):
        distances = torch.cdist(queries[start : start + chunk].float(), pool.float())
        if exclude_self:
            rows = torch.arange(len(distances))
            distances[rows, rows + start] = float("inf")
        nearest.append(distances.min(1).values)
    return torch.cat(nearest)


def copy_threshold(train_features: torch.Tensor, percentile: float = COPY_PERCENTILE) -> float:
    """The `percentile`-th percentile of the training images' leave-one-out nearest distances."""
    own = nearest_distances(train_features, train_features, exclude_self=True)
    return float(np.percentile(own.numpy(), percentile))


def _none_if_empty(array: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor | None:
    return None if len(array) == 0 else array


def load_reference(
    dataset: str, split: str, extractor: Extractor, data_dir: str | None = None
) -> RealReference:
    """The cached statistics, computed (and cached) on first use."""
    path = reference_path(dataset, split, extractor)
    if path.is_file():
        with np.load(path) as f:
            if "copy_threshold" in f.files:  # else written by an older gankit: recomputed
                return RealReference(
                    str(f["name"]),
                    int(f["n"]),
                    f["mu"],
                    f["sigma"],
                    _none_if_empty(f["class_mu"]),
                    _none_if_empty(f["class_sigma"]),
                    torch.from_numpy(f["subset"]),
                    _none_if_empty(torch.from_numpy(f["train_features"])),
                    None if np.isnan(f["copy_threshold"]) else float(f["copy_threshold"]),
                )
    logger.info("computing reference statistics of %s/%s with %s", dataset, split, extractor.name)
    ref = compute_reference(dataset, split, extractor, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique temporary file, renamed into place: two processes building one cache entry at
    # once each write their own, and the last rename wins with a complete file
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as f:
            empty = np.zeros(0, dtype=np.float32)  # what is not computed is stored empty
            np.savez(
                f,
                name=ref.name,
                n=ref.n,
                mu=ref.mu,
                sigma=ref.sigma,
                class_mu=empty if ref.class_mu is None else ref.class_mu,
                class_sigma=empty if ref.class_sigma is None else ref.class_sigma,
                subset=ref.subset.numpy(),
                train_features=empty if ref.train_features is None else ref.train_features.numpy(),
                copy_threshold=np.nan if ref.copy_threshold is None else ref.copy_threshold,
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ref
