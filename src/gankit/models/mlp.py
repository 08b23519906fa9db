"""Fully connected G and D of the reference design (Keras-GAN gan.py / cgan.py)."""

from __future__ import annotations

import math

import torch
from torch import nn

from gankit.models.layers import CONDITIONING


class MLPGenerator(nn.Module):
    """z (N, latent_dim) [+ labels (N,)] -> images (N, C, H, W) in [-1, 1].

    Each hidden block is Linear -> LeakyReLU -> BatchNorm1d, in the reference's order.
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: tuple[int, int, int],
        hidden: list[int],
        num_classes: int = 0,
        conditioning: str = "none",
        leaky_slope: float = 0.2,
        bn_momentum: float = 0.2,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        self.latent_dim, self.num_classes, self.image_shape = latent_dim, num_classes, image_shape
        self.condition = CONDITIONING[conditioning](num_classes, latent_dim)
        layers: list[nn.Module] = []
        width = self.condition.out_features
        for out in hidden:
            layers += [
                nn.Linear(width, out),
                nn.LeakyReLU(leaky_slope),
                nn.BatchNorm1d(out, momentum=bn_momentum, eps=bn_eps),
            ]
            width = out
        layers += [nn.Linear(width, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.condition(z, labels)  # (N, latent_dim [+ C])
        return self.net(h).view(-1, *self.image_shape)  # (N, C*H*W) -> (N, C, H, W)


class MLPDiscriminator(nn.Module):
    """images (N, C, H, W) [+ labels (N,)] -> logits (N,).

    Each hidden block is Linear -> LeakyReLU [-> Dropout], in the reference's order.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        hidden: list[int],
        dropout: list[float],
        num_classes: int = 0,
        conditioning: str = "none",
        leaky_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.condition = CONDITIONING[conditioning](num_classes, math.prod(image_shape))
        layers: list[nn.Module] = []
        width = self.condition.out_features
        for out, rate in zip(hidden, dropout, strict=True):
            layers += [nn.Linear(width, out), nn.LeakyReLU(leaky_slope)]
            if rate > 0:
                layers.append(nn.Dropout(rate))
            width = out
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.condition(images.flatten(1), labels)  # (N, C*H*W [+ C])
        return self.net(h).squeeze(1)  # (N, 1) -> (N,)
