"""What the registry `gankit.models.ARCHITECTURES` holds for each architecture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from gankit.config import ModelConfig


class FromConfig(Protocol):
    """A G or D class: built from the model config, the dataset's image shape and classes."""

    @classmethod
    def from_config(
        cls, config: ModelConfig, image_shape: tuple[int, int, int], num_classes: int
    ) -> nn.Module: ...


@dataclass(frozen=True)
class Architecture:
    """One architecture: its G and D classes and the memory layout they train fastest in.

    Adding an architecture is one file (`models/NAME.py`, ending in its `ARCHITECTURE`), its line
    in `ARCHITECTURES` and its tests, which the contract tests parametrise over the registry.
    """

    generator: type[FromConfig]
    discriminator: type[FromConfig]
    memory_format: torch.memory_format
