"""GAN losses as pure functions of D's logits.

Every family splits D's loss into a term on real logits and a term on fake logits, so that D can
step on them separately (as the reference's two `train_on_batch` calls do) or on their sum.
All inputs are raw logits (N,), never probabilities: sigmoid + log is folded into `softplus`,
which is numerically stable (log sigmoid(x) = -softplus(-x)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

Loss = Callable[[torch.Tensor], torch.Tensor]


def d_real_bce(real_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] = E[softplus(-l_real)]: BCE with target 1 (Goodfellow et al. 2014)."""
    return F.softplus(-real_logits).mean()


def d_fake_bce(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log(1 - D(G(z)))] = E[softplus(l_fake)]: BCE with target 0."""
    return F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))] = E[softplus(-l_fake)]: non-saturating G loss (Goodfellow et al. 2014)."""
    return F.softplus(-fake_logits).mean()


def g_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))] = -E[softplus(l_fake)]: the saturating minimax G loss."""
    return -F.softplus(fake_logits).mean()


def d_real_hinge(real_logits: torch.Tensor) -> torch.Tensor:
    """E[relu(1 - l_real)] (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1.0 - real_logits).mean()


def d_fake_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[relu(1 + l_fake)]."""
    return F.relu(1.0 + fake_logits).mean()


def g_loss_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[l_fake]."""
    return -fake_logits.mean()


def d_real_least_squares(real_logits: torch.Tensor) -> torch.Tensor:
    """0.5 E[(l_real - 1)^2] (Mao et al. 2017, LSGAN with a=0, b=c=1; D's output is unbounded)."""
    return 0.5 * (real_logits - 1.0).pow(2).mean()


def d_fake_least_squares(fake_logits: torch.Tensor) -> torch.Tensor:
    """0.5 E[l_fake^2]."""
    return 0.5 * fake_logits.pow(2).mean()


def g_loss_least_squares(fake_logits: torch.Tensor) -> torch.Tensor:
    """0.5 E[(l_fake - 1)^2]."""
    return 0.5 * (fake_logits - 1.0).pow(2).mean()


@dataclass(frozen=True)
class LossFamily:
    """D's loss is d_real(real_logits) + d_fake(fake_logits); G's is g(fake_logits)."""

    d_real: Loss
    d_fake: Loss
    g: Loss


LOSSES = {
    "nonsaturating": LossFamily(d_real_bce, d_fake_bce, g_loss_nonsaturating),
    "minimax": LossFamily(d_real_bce, d_fake_bce, g_loss_minimax),
    "hinge": LossFamily(d_real_hinge, d_fake_hinge, g_loss_hinge),
    "least-squares": LossFamily(d_real_least_squares, d_fake_least_squares, g_loss_least_squares),
}


def get_loss(name: str) -> LossFamily:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}")
    return LOSSES[name]
