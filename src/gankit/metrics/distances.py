"""The metric maths on feature vectors: Fréchet distance, KID, Inception Score, PRDC.

Pure functions of features (or of their statistics), independent of how features are made.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

IMAGINARY_TOLERANCE = 1e-3  # largest |imaginary part| of sqrtm(S1 S2), relative, taken as rounding


class FrechetDistanceUndefined(ArithmeticError):
    """The matrix square root of S1 S2 is far from real: no Fréchet distance to report."""


def gaussian_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {array.shape}")
    return array.mean(0), np.cov(array, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians.

    The Fréchet (2-Wasserstein) distance of Heusel et al. 2017, computed as pytorch-fid does:
    scipy's `sqrtm` in float64, with `eps` added to the diagonals when the product is singular.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = (
        np.atleast_2d(sigma1).astype(np.float64),
        np.atleast_2d(sigma2).astype(np.float64),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"shapes differ: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    import scipy.linalg  # here, not at the top: 0.5 s that training without evaluation skips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # pytorch-fid's rule, made relative: a tiny imaginary part on the diagonal (all the
        # trace uses) is rounding; a large one means S1 S2 is far from having a real square
        # root and the distance is not defined
        diagonal = np.diagonal(covmean)
        imaginary = np.abs(diagonal.imag).max()
        scale = max(np.abs(diagonal.real).max(), 1e-12)
        if imaginary > IMAGINARY_TOLERANCE * scale:
            raise FrechetDistanceUndefined(
                f"sqrtm(S1 S2) has an imaginary part of {imaginary:.3g} (relative "
                f"{imaginary / scale:.3g} > {IMAGINARY_TOLERANCE}): the covariances are degenerate"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _poly_mmd(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y / D + 1)^3: kernels in float32, sums in float64.

    The same estimator as torchmetrics' `poly_mmd` (tested against it); float32 matrix products
    make the 100 subsets of KID about 10x faster than float64 on a CPU.
    """
    m, gamma = real.shape[0], 1.0 / real.shape[1]

    def kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = torch.addmm(torch.ones(()), x, y.T, alpha=gamma)  # x.y / D + 1
        return (k * k * k).double()  # much faster than pow(3) on a CPU

    k_xx, k_yy, k_xy = kernel(real, real), kernel(fake, fake), kernel(real, fake)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
        m * (m - 1)
    )
    return float(within - 2 * k_xy.sum() / m**2)


def kernel_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel, mean and
    (population) std over `subsets` random subsets of `subset_size`, as torchmetrics computes it."""
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(real)} and {len(fake)}")
    real, fake = real.float(), fake.float()
    scores = []
    for _ in range(subsets):
        r = real[torch.randperm(len(real), generator=generator)[:size]]
        f = fake[torch.randperm(len(fake), generator=generator)[:size]]
        scores.append(_poly_mmd(r, f))
    values = torch.tensor(scores, dtype=torch.float64)
    return float(values.mean()), float(values.std(unbiased=False))


class _Logits(torch.nn.Module):
    """Passes precomputed logits through, so torchmetrics' InceptionScore can score them."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits


def inception_score(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) from classifier logits (Salimans et al. 2016), mean and std
    over `splits`, via torchmetrics (its shuffle is made deterministic with `seed`)."""
    # Imported here: torchmetrics takes about 2 s to import, which every `gankit train` would pay.
    from torchmetrics.image.inception import InceptionScore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # feature-buffer notice; std of 1 split
        # sync_on_compute=False: torchmetrics would otherwise gather over every process of an
        # initialised process group, and under DDP only rank 0 evaluates (a deadlock)
        metric = InceptionScore(feature=_Logits(), splits=splits, sync_on_compute=False)
        metric.update(logits.double())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mean, std = metric.compute()
    return float(mean), float(std)


def _kth_neighbour_radius(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row."""
    distances = torch.cdist(features, features)  # (N, N)
    return distances.kthvalue(k + 1, dim=1).values  # +1: the row itself is at distance 0


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls.

    precision: fraction of fakes inside some real sample's k-NN ball; recall: fraction of reals
    inside some fake sample's k-NN ball.
    """
    real, fake = real.double(), fake.double()
    real_radius, fake_radius = _kth_neighbour_radius(real, k), _kth_neighbour_radius(fake, k)
    cross = torch.cdist(real, fake)  # (N_real, N_fake)
    precision = (cross < real_radius[:, None]).any(0).double().mean()
    recall = (cross < fake_radius[None, :]).any(1).double().mean()
    return float(precision), float(recall)


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) with k-NN balls around the real samples.

    density: mean number of real balls holding each fake, divided by k (can exceed 1);
    coverage: fraction of real balls that hold at least one fake.
    """
    real, fake = real.double(), fake.double()
    real_radius = _kth_neighbour_radius(real, k)
    inside = torch.cdist(real, fake) < real_radius[:, None]  # (N_real, N_fake)
    density = inside.sum(0).double().mean() / k
    coverage = inside.any(1).double().mean()
    return float(density), float(coverage)
