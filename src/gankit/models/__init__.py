"""Architectures by name, and the one builder that turns a config into (G, D)."""

from __future__ import annotations

import torch
from torch import nn

from gankit.config import ModelConfig
from gankit.errors import ConfigError
from gankit.models import dcgan, mlp
from gankit.models.architecture import Architecture
from gankit.models.conditioning import CONDITIONING
from gankit.models.init import INITS, apply_spectral_norm

ARCHITECTURES: dict[str, Architecture] = {"mlp": mlp.ARCHITECTURE, "dcgan": dcgan.ARCHITECTURE}

__all__ = ["ARCHITECTURES", "CONDITIONING", "Architecture", "build_models", "memory_format"]


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown model {name!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def memory_format(config: ModelConfig) -> torch.memory_format:
    """The layout the architecture's G, D and training images are kept in."""
    return architecture(config.architecture).memory_format


def build_models(
    config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int
) -> tuple[nn.Module, nn.Module]:
    """Builds and initialises G and D.

    Args:
        config: the model section of the run configuration.
        image_shape: (C, H, W) of the dataset.
        num_classes: classes of the dataset; ignored (0) when `config.conditioning` is "none".
    """
    chosen = architecture(config.architecture)
    if config.conditioning not in CONDITIONING:
        raise ConfigError(
            f"unknown conditioning {config.conditioning!r}; choose from {sorted(CONDITIONING)}"
        )
    classes = 0 if config.conditioning == "none" else num_classes
    if config.conditioning != "none" and classes < 2:
        raise ConfigError(f"conditioning {config.conditioning!r} needs >= 2 classes, got {classes}")
    generator = chosen.generator.from_config(config, image_shape, classes)
    discriminator = chosen.discriminator.from_config(config, image_shape, classes)
    INITS[config.init](generator)
    INITS[config.init](discriminator)
    if config.spectral_norm:
        apply_spectral_norm(discriminator)
    return generator, discriminator
