"""Architectures by name, and the one builder that turns a config into (G, D)."""

from __future__ import annotations

import torch
from torch import nn

from gankit.config import ModelConfig
from gankit.errors import ConfigError
from gankit.models.conditioning import CONDITIONING
from gankit.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gankit.models.init import INITS, apply_spectral_norm
from gankit.models.mlp import MLPDiscriminator, MLPGenerator

ARCHITECTURES = {
    "mlp": (MLPGenerator, MLPDiscriminator),
    "dcgan": (DCGANGenerator, DCGANDiscriminator),
}

__all__ = ["ARCHITECTURES", "CONDITIONING", "build_models", "memory_format"]


def memory_format(config: ModelConfig) -> torch.memory_format:
    """channels-last for convolutional models (oneDNN's and cuDNN's preferred layout: about 10%
    faster per cdcgan iteration on 2 CPU cores), PyTorch's default layout for the MLPs."""
    return torch.contiguous_format if config.architecture == "mlp" else torch.channels_last


def build_models(
    config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int
) -> tuple[nn.Module, nn.Module]:
    """Builds and initialises G and D.

    Args:
        config: the model section of the run configuration.
        image_shape: (C, H, W) of the dataset.
        num_classes: classes of the dataset; ignored (0) when `config.conditioning` is "none".
    """
    if config.architecture not in ARCHITECTURES:
        raise ConfigError(
            f"unknown model {config.architecture!r}; choose from {sorted(ARCHITECTURES)}"
        )
    if config.conditioning not in CONDITIONING:
        raise ConfigError(
            f"unknown conditioning {config.conditioning!r}; choose from {sorted(CONDITIONING)}"
        )
    classes = 0 if config.conditioning == "none" else num_classes
    if config.conditioning != "none" and classes < 2:
        raise ConfigError(f"conditioning {config.conditioning!r} needs >= 2 classes, got {classes}")
    generator_class, discriminator_class = ARCHITECTURES[config.architecture]
    if config.architecture == "mlp":
        generator = generator_class(
            config.latent_dim, image_shape, config.g_hidden, classes, config.conditioning,
            config.leaky_slope, config.bn_momentum, config.bn_eps,
        )  # fmt: skip
        discriminator = discriminator_class(
            image_shape, config.d_hidden, config.d_dropout, classes, config.conditioning,
            config.leaky_slope, config.dropout_impl,
        )  # fmt: skip
    else:
        if config.channels is None:
            raise ConfigError(f"model.channels is required by architecture {config.architecture!r}")
        generator = generator_class(
            config.latent_dim, image_shape, config.channels, classes, config.conditioning,
            config.bn_momentum, config.bn_eps,
        )  # fmt: skip
        discriminator = discriminator_class(
            image_shape, config.channels, classes, config.conditioning, config.leaky_slope
        )
    INITS[config.init](generator)
    INITS[config.init](discriminator)
    if config.spectral_norm:
        apply_spectral_norm(discriminator)
    return generator, discriminator
