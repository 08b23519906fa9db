"""Has G memorised its training set? Nearest training images of generated ones.

Distances in two spaces: the domain classifier's features (what the metrics see) and raw
pixels. `plot_neighbours` puts each generated image above its nearest training images, so that
a person can tell a copy (a near-identical neighbour, small distances) from a look-alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gankit.data import ImageDataset
from gankit.metrics.features import Extractor, extract


@dataclass
class Neighbours:
    """For each generated image, its nearest training image in feature and in pixel space.

    Attributes:
        feature_index, pixel_index: int64 (N,) indices into the training set.
        feature_distance, pixel_distance: float (N,) Euclidean distances (pixels in [-1, 1]).
    """

    feature_index: torch.Tensor
    feature_distance: torch.Tensor
    pixel_index: torch.Tensor
    pixel_distance: torch.Tensor


def nearest_training_images(
    generated: torch.Tensor, train: ImageDataset, extractor: Extractor, chunk: int = 2000
) -> Neighbours:
    """Nearest neighbours of float images (N, 1, H, W) in [-1, 1] among the training images."""
    fake_features, _ = extract(extractor, generated)
    best = {"fi": [], "fd": [], "pi": [], "pd": []}
    train_features, _ = extract(extractor, train.images)
    train_pixels = train.images.flatten(1)
    for start in range(0, len(generated), chunk):
        f = torch.cdist(fake_features[start : start + chunk], train_features)  # (n, N_train)
        p = torch.cdist(generated[start : start + chunk].flatten(1), train_pixels)
        fd, fi = f.min(1)
        pd, pi = p.min(1)
        for key, value in (("fi", fi), ("fd", fd), ("pi", pi), ("pd", pd)):
            best[key].append(value)
    cat = {k: torch.cat(v) for k, v in best.items()}
    return Neighbours(cat["fi"], cat["fd"], cat["pi"], cat["pd"])


def plot_neighbours(
    generated: torch.Tensor, train: ImageDataset, neighbours: Neighbours, path: str | Path
) -> Path:
    """Columns: generated image, its nearest training image by features, by pixels (with the
    distances in the titles)."""
    from matplotlib.figure import Figure  # no pyplot: the process's backend is left alone

    n = len(generated)
    fig = Figure(figsize=(1.3 * n, 4.6))
    axes = fig.subplots(3, n, squeeze=False)
    rows = [
        ("generated", generated, None),
        ("nearest (features)", train.images[neighbours.feature_index], neighbours.feature_distance),
        ("nearest (pixels)", train.images[neighbours.pixel_index], neighbours.pixel_distance),
    ]
    for r, (name, images, distances) in enumerate(rows):
        for i in range(n):
            ax = axes[r, i]
            ax.imshow(images[i, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if distances is not None:
                ax.set_title(f"d={distances[i]:.2f}", fontsize=8)
            if i == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle("Memorisation check: generated images and their nearest training images")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    return path
