"""Fully connected G and D of the reference design (Keras-GAN gan.py / cgan.py), with every
conditioning method."""

from __future__ import annotations

import math

import torch
from torch import nn

from gankit.config import ModelConfig
from gankit.models.architecture import Architecture
from gankit.models.conditioning import CONDITIONING, INPUTS, OutputHead, check_labels
from gankit.models.dropout import Dropout
from gankit.models.normalization import batch_norm, run_layers


class MLPGenerator(nn.Module):
    """z (N, latent_dim) [+ labels (N,)] -> images (N, C, H, W) in [-1, 1].

    Each hidden block is Linear -> LeakyReLU -> BatchNorm1d, in the reference's order (the
    BatchNorm is class-conditional with `conditioning="projection"`).
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
        method = CONDITIONING[conditioning]
        self.condition = INPUTS[method.g_input](num_classes, latent_dim)
        cbn = method.g_batchnorm
        layers: list[nn.Module] = []
        width = self.condition.out_features
        for out in hidden:
            layers += [
                nn.Linear(width, out),
                nn.LeakyReLU(leaky_slope),
                batch_norm(out, num_classes, cbn, 1, bn_momentum, bn_eps),
            ]
            width = out
        layers += [nn.Linear(width, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    @classmethod
    def from_config(
        cls, config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int
    ) -> MLPGenerator:
        return cls(
            config.latent_dim,
            image_shape,
            config.g_hidden,
            num_classes,
            config.conditioning,
            config.leaky_slope,
            config.bn_momentum,
            config.bn_eps,
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(labels, self.num_classes, values=False)
        h = self.condition(z, labels)  # (N, latent [+ C])
        return run_layers(self.net, h, labels).view(-1, *self.image_shape)  # -> (N, C, H, W)


class MLPDiscriminator(nn.Module):
    """images (N, C, H, W) [+ labels (N,)] -> logits (N,) (ACGAN: and class logits (N, C)).

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
        dropout_impl: str = "torch",
    ) -> None:
        super().__init__()
        method = CONDITIONING[conditioning]
        self.num_classes, self.reads_labels = num_classes, method.d_reads_labels
        self.condition = INPUTS[method.d_input](num_classes, math.prod(image_shape))
        layers: list[nn.Module] = []
        width = self.condition.out_features
        for out, rate in zip(hidden, dropout, strict=True):
            layers += [nn.Linear(width, out), nn.LeakyReLU(leaky_slope)]
            if rate > 0:
                layers.append(Dropout(rate, dropout_impl))
            width = out
        self.net = nn.Sequential(*layers)
        self.head = OutputHead(width, num_classes, method.d_head)

    @classmethod
    def from_config(
        cls, config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int
    ) -> MLPDiscriminator:
        return cls(
            image_shape,
            config.d_hidden,
            config.d_dropout,
            num_classes,
            config.conditioning,
            config.leaky_slope,
            config.dropout_impl,
        )

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.reads_labels:  # ACGAN's D predicts the class instead of reading it
            check_labels(labels, self.num_classes, values=False)
        flat = images.flatten(1)  # (N, C, H, W) -> (N, C*H*W)
        h = self.net(self.condition(flat, labels))
        return self.head(h, labels)


# the registry entry (gankit.models.ARCHITECTURES): fully connected, PyTorch's default layout
ARCHITECTURE = Architecture(MLPGenerator, MLPDiscriminator, torch.contiguous_format)
