"""Mode coverage on Stacked MNIST: each channel read by the MNIST judge, 1,000 modes.

The protocol of VEEGAN (Srivastava et al. 2017) as PacGAN's released code runs it
(stacked_MNIST_experiments/VEEGAN_experiment/model.py, `log_metrics`): 26,000 samples, each of
the three channels classified by an MNIST classifier, the mode 100 r + 10 g + b; the figures
are the number of modes seen at least once, and KL(q || uniform) = sum q ln(1000 q) in nats,
where q is the generated distribution over the modes (a collapsed generator scores high).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gankit.errors import UsageError
from gankit.images import as_float
from gankit.metrics.features import Extractor, extract
from gankit.metrics.reference import COPY_PERCENTILE, RealReference
from gankit.metrics.suite import copy_rate

MODES = 1000
DEFAULT_SAMPLES = 26_000  # VEEGAN's and PacGAN's protocol


def channels(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float (N, 3, 28, 28) in [-1, 1] from float (N, 3, H, W) or uint8 (N, H, W, 3) images; a
    32x32 image is centre-cropped to the judge's 28x28."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not images.is_floating_point():
        if images.dim() != 4 or images.shape[-1] != 3:
            raise UsageError(
                f"stacked-mnist images must be (N, H, W, 3), got {tuple(images.shape)}"
            )
        images = as_float(images.permute(0, 3, 1, 2))
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[2:] not in ((28, 28), (32, 32)):
        raise UsageError(
            f"stacked-mnist images must be 3 channels of 28x28 or 32x32, got {tuple(images.shape)}"
        )
    if images.shape[2] == 32:
        images = images[:, :, 2:30, 2:30]
    return images.contiguous()


def kl_to_uniform(modes: torch.Tensor, k: int = MODES) -> float:
    """KL(q || uniform over k) = sum_m q_m ln(k q_m), in nats, of the empirical distribution q
    of `modes` (int (N,) in 0..k-1); 0 terms contribute 0."""
    q = torch.bincount(modes, minlength=k).double() / len(modes)
    q = q[q > 0]
    return float((q * torch.log(k * q)).sum())


def kl_floor(n: int, k: int = MODES) -> float:
    """The expected KL of n draws from a perfect (uniform) generator, to first order:
    (k - 1) / (2n): what finite samples alone add (0.019 for 1,000 modes and 26,000 samples)."""
    return (k - 1) / (2 * n)


def read_modes(images: np.ndarray | torch.Tensor, extractor: Extractor) -> torch.Tensor:
    """int64 (N,) modes 100 r + 10 g + b, each channel's digit read by the MNIST judge."""
    stacked = channels(images)
    digits = []
    for c in range(3):
        _, logits = extract(extractor, stacked[:, c : c + 1])
        digits.append(logits.argmax(1))
    return 100 * digits[0] + 10 * digits[1] + digits[2]


def mode_figures(
    images: np.ndarray | torch.Tensor, extractor: Extractor, reference: RealReference
) -> dict[str, Any]:
    """Modes covered, KL to uniform and its floor, and each channel's copy rate against the
    judge's training digits."""
    n = len(images)
    if n < 2:
        raise UsageError(f"need at least 2 images to evaluate, got {n}")
    stacked = channels(images)
    modes = read_modes(stacked, extractor)
    rates = []
    for c in range(3):
        features, _ = extract(extractor, stacked[:, c : c + 1])
        rates.append(copy_rate(features, reference))
    known = [r for r in rates if r is not None]
    return {
        "modes": int(torch.unique(modes).numel()),
        "kl": kl_to_uniform(modes),
        "kl_floor": kl_floor(n),
        "copy_rate": max(known) if known else None,
        "copy_rate_per_channel": rates,
        "copy_percentile": COPY_PERCENTILE,
        "extractor": extractor.name,
        "extractor_weights": extractor.weights_id,
        "reference": reference.name,
        "n": n,
        "mode_hist_max": float(torch.bincount(modes, minlength=MODES).max()) / n,
    }
