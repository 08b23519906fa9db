"""DCGAN-style convolutional G and D (Radford et al. 2016), sized for 28x28 and 32x32 images.

Shapes come from the dataset: H and W must be divisible by 4 (two stride-2 stages).
"""

from __future__ import annotations

import torch
from torch import nn

from gankit.config import ModelConfig
from gankit.errors import ConfigError
from gankit.models.architecture import Architecture
from gankit.models.conditioning import (
    CONDITIONING,
    INPUTS,
    OutputHead,
    check_labels,
    embed,
    one_hot,
)
from gankit.models.normalization import batch_norm, run_layers


def _channels(config: ModelConfig) -> int:
    if config.channels is None:
        raise ConfigError(f"model.channels is required by architecture {config.architecture!r}")
    return config.channels


def _check_shape(image_shape: tuple[int, int, int]) -> tuple[int, int]:
    _, height, width = image_shape
    if height % 4 or width % 4:
        raise ConfigError(f"the dcgan architecture needs H and W divisible by 4, got {image_shape}")
    return height // 4, width // 4


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) [+ labels] -> images (N, C, H, W) in [-1, 1].

    Linear to (4c, H/4, W/4), then two stride-2 transposed convolutions (4c -> 2c -> c) with
    BatchNorm and ReLU, and a 3x3 convolution to C channels with tanh.
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: tuple[int, int, int],
        channels: int = 32,
        num_classes: int = 0,
        conditioning: str = "none",
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.latent_dim, self.num_classes, self.image_shape = latent_dim, num_classes, image_shape
        self.h0, self.w0 = _check_shape(image_shape)
        method = CONDITIONING[conditioning]
        self.condition = INPUTS[method.g_input](num_classes, latent_dim)
        cbn = method.g_batchnorm

        def norm(features: int, dims: int) -> nn.Module:
            return batch_norm(features, num_classes, cbn, dims, bn_momentum, bn_eps)

        c = channels
        self.project = nn.Sequential(
            nn.Linear(self.condition.out_features, 4 * c * self.h0 * self.w0, bias=False),
            norm(4 * c * self.h0 * self.w0, 1),
            nn.ReLU(),
        )
        self.net = nn.Sequential(
            nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1, bias=False),
            norm(2 * c, 2),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False),
            norm(c, 2),
            nn.ReLU(),
            nn.Conv2d(c, image_shape[0], 3, 1, 1),
            nn.Tanh(),
        )
        self.channels = c

    @classmethod
    def from_config(
        cls, config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int
    ) -> DCGANGenerator:
        return cls(
            config.latent_dim,
            image_shape,
            _channels(config),
            num_classes,
            config.conditioning,
            config.bn_momentum,
            config.bn_eps,
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        check_labels(labels, self.num_classes, values=False)
        h = self.condition(z, labels)  # (N, latent [+ C])
        h = run_layers(self.project, h, labels)  # (N, 4c * H/4 * W/4)
        h = h.view(-1, 4 * self.channels, self.h0, self.w0)  # -> (N, 4c, H/4, W/4)
        return run_layers(self.net, h, labels)  # -> (N, C, H, W)


class DCGANDiscriminator(nn.Module):
    """images (N, C, H, W) [+ labels] -> logits (N,) (ACGAN: and class logits (N, classes)).

    Two stride-2 4x4 convolutions (c -> 2c) and a 3x3 convolution (4c), LeakyReLU(0.2), no
    BatchNorm (it fights spectral norm and the gradient penalty), then the output head on the
    flattened (4c, H/4, W/4) features. Input conditioning: `concat` adds one-hot planes as extra
    channels, `multiply` multiplies the image by a per-class embedding of its shape.

    `pack` m > 1 (PacGAN, Lin et al. 2018): D reads m consecutive images of the batch as one
    input of m C channels and returns N / m logits. `minibatch_std` G (Karras et al. 2018): one
    more feature map before the head, the standard deviation over each group of G inputs
    averaged over features and positions (`minibatch_stddev`).
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: int = 32,
        num_classes: int = 0,
        conditioning: str = "none",
        leaky_slope: float = 0.2,
        pack: int = 1,
        minibatch_std: int | None = None,
    ) -> None:
        super().__init__()
        method = CONDITIONING[conditioning]
        self.num_classes, self.image_shape = num_classes, image_shape
        self.pack, self.minibatch_std = pack, minibatch_std
        self.reads_labels = method.d_reads_labels
        h0, w0 = _check_shape(image_shape)
        self.input_method = method.d_input
        if self.input_method == "multiply":
            self.embedding = nn.Embedding(
                num_classes, image_shape[0] * image_shape[1] * image_shape[2]
            )
        extra = num_classes if self.input_method == "concat" else 0
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(pack * (image_shape[0] + extra), c, 4, 2, 1),
            nn.LeakyReLU(leaky_slope),
            nn.Conv2d(c, 2 * c, 4, 2, 1),
            nn.LeakyReLU(leaky_slope),
            nn.Conv2d(2 * c, 4 * c, 3, 1, 1),
            nn.LeakyReLU(leaky_slope),
        )
        maps = 4 * c + (1 if minibatch_std else 0)
        self.head = OutputHead(maps * h0 * w0, num_classes, method.d_head)

    @classmethod
    def from_config(
        cls, config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int
    ) -> DCGANDiscriminator:
        return cls(
            image_shape,
            _channels(config),
            num_classes,
            config.conditioning,
            config.leaky_slope,
            config.pack,
            config.minibatch_std,
        )

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.reads_labels:  # ACGAN's D predicts the class instead of reading it
            check_labels(labels, self.num_classes, values=False)
        x = images
        if self.input_method == "multiply":
            x = x * embed(self.embedding, labels).view(-1, *self.image_shape)
        elif self.input_method == "concat":
            n, _, height, width = images.shape
            planes = one_hot(labels, self.num_classes, images.dtype)  # (N, K)
            x = torch.cat([x, planes.view(n, -1, 1, 1).expand(n, -1, height, width)], 1)
        if self.pack > 1:  # (N, C, H, W) -> (N / m, m C, H, W): consecutive images together
            n, channels, height, width = x.shape
            if n % self.pack:
                raise ValueError(f"a batch of {n} images does not pack into groups of {self.pack}")
            x = x.reshape(n // self.pack, self.pack * channels, height, width)
        h = self.net(x)  # (N', 4c, H/4, W/4)
        if self.minibatch_std:
            h = torch.cat([h, minibatch_stddev(h, self.minibatch_std)], 1)
        return self.head(h.flatten(1), labels)


def minibatch_stddev(h: torch.Tensor, group: int) -> torch.Tensor:
    """(N, 1, H, W): for each of the N / G groups of inputs i, i + N/G, i + 2N/G, ... (StyleGAN2's
    grouping), the standard deviation of every feature over the group (biased, + 1e-8 under
    the square root), averaged over features and positions, as one map for each group member.
    """
    n, c, height, width = h.shape
    if n % group:
        raise ValueError(f"a batch of {n} does not split into minibatch-std groups of {group}")
    y = h.reshape(group, n // group, c, height, width)
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()  # (N/G, C, H, W)
    y = y.mean((1, 2, 3)).reshape(-1, 1, 1, 1)  # (N/G, 1, 1, 1)
    return y.repeat(group, 1, height, width)


# the registry entry (gankit.models.ARCHITECTURES): channels-last, oneDNN's and cuDNN's preferred
# layout (about 10% faster per cdcgan iteration on 2 CPU cores)
ARCHITECTURE = Architecture(DCGANGenerator, DCGANDiscriminator, torch.channels_last)
