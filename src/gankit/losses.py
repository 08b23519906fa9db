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

from gankit.errors import ConfigError

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


def d_real_wasserstein(real_logits: torch.Tensor) -> torch.Tensor:
    """-E[D(x)]: the critic's real term (Arjovsky et al. 2017); pair it with a gradient penalty."""
    return -real_logits.mean()


def d_fake_wasserstein(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[D(G(z))]."""
    return fake_logits.mean()


def g_loss_wasserstein(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[D(G(z))]."""
    return -fake_logits.mean()


def rpgan_pairing(winner_logits: torch.Tensor, loser_logits: torch.Tensor) -> torch.Tensor:
    """The relativistic pairing loss of RpGAN (Jolicoeur-Martineau 2019; R3GAN, Huang et al.
    2024): mean softplus(-(winner_i - loser_i)) over the pairs i. D's loss is
    rpgan_pairing(real, fake), G's rpgan_pairing(fake, real)."""
    return F.softplus(loser_logits - winner_logits).mean()


def _paired(logits: torch.Tensor) -> torch.Tensor:
    """RpGAN's per-batch terms are 0: the pairing term is added where both batches are known
    (`training.step`)."""
    return logits.new_zeros(())


def d_real_bce_smoothed(real_logits: torch.Tensor, smoothing: float) -> torch.Tensor:
    """BCE with the real target 1 - smoothing (one-sided label smoothing, Salimans et al. 2016):
    (1 - s) softplus(-l) + s softplus(l)."""
    return (
        (1.0 - smoothing) * F.softplus(-real_logits) + smoothing * F.softplus(real_logits)
    ).mean()


def gradient_penalty(
    discriminator: Callable[..., torch.Tensor],
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    labels: torch.Tensor | None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] at random interpolates x_hat of real and fake images
    (WGAN-GP, Gulrajani et al. 2017). Returns a 0-d tensor with a graph (create_graph=True)."""
    alpha = torch.rand(
        real_images.shape[0], 1, 1, 1, device=real_images.device, generator=generator
    )  # (N, 1, 1, 1)
    mixed = (alpha * real_images + (1 - alpha) * fake_images.detach()).requires_grad_(True)
    logits = adversarial_logits(discriminator(mixed, labels))
    (grad,) = torch.autograd.grad(logits.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def r1_penalty(real_images: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """E[||grad_x D(x)||^2] on real images (Mescheder et al. 2018); `real_images` must have
    required grad before D ran. Multiply by gamma / 2. On fake images it is R2 (R3GAN)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def adversarial_logits(output: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """D's real/fake logits (N,), also from an ACGAN discriminator's (logits, class_logits)."""
    return output[0] if isinstance(output, tuple) else output


@dataclass(frozen=True)
class LossFamily:
    """D's loss is d_real(real_logits) + d_fake(fake_logits); G's is g(fake_logits). A
    `relativistic` family adds rpgan_pairing over the real and fake batches instead."""

    d_real: Loss
    d_fake: Loss
    g: Loss
    relativistic: bool = False


LOSSES = {
    "nonsaturating": LossFamily(d_real_bce, d_fake_bce, g_loss_nonsaturating),
    "minimax": LossFamily(d_real_bce, d_fake_bce, g_loss_minimax),
    "hinge": LossFamily(d_real_hinge, d_fake_hinge, g_loss_hinge),
    "least-squares": LossFamily(d_real_least_squares, d_fake_least_squares, g_loss_least_squares),
    "wgan-gp": LossFamily(d_real_wasserstein, d_fake_wasserstein, g_loss_wasserstein),
    "rpgan": LossFamily(_paired, _paired, _paired, relativistic=True),
}
BCE_LOSSES = ("nonsaturating", "minimax")  # the families that one-sided label smoothing applies to


def get_loss(name: str) -> LossFamily:
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}")
    return LOSSES[name]
