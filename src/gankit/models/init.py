"""Weight initialisation schemes (applied once, by the builder) and D's spectral norm."""

from __future__ import annotations

import torch
from torch import nn

from gankit.models.normalization import ConditionalBatchNorm

WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


@torch.no_grad()
def keras_init_(module: nn.Module) -> None:
    """Keras defaults: Dense Glorot-uniform with zero bias, Embedding U(-0.05, 0.05).

    The gains and biases of conditional BatchNorm keep their own (1, 0) start.
    """
    skip = {
        id(m)
        for c in module.modules()
        if isinstance(c, ConditionalBatchNorm)
        for m in (c.gain, c.bias)
    }
    for layer in module.modules():
        if isinstance(layer, WEIGHTED):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Embedding) and id(layer) not in skip:
            nn.init.uniform_(layer.weight, -0.05, 0.05)


@torch.no_grad()
def dcgan_init_(module: nn.Module) -> None:
    """Radford et al. 2016: conv and linear weights N(0, 0.02), BatchNorm gains N(1, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, WEIGHTED):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def torch_init_(module: nn.Module) -> None:
    """PyTorch's own layer defaults: nothing to do."""


INITS = {"keras": keras_init_, "dcgan": dcgan_init_, "torch": torch_init_}


def apply_spectral_norm(module: nn.Module) -> None:
    """Spectral normalisation (Miyato et al. 2018) of D's linear and conv weights, and of its
    embeddings (the multiply conditioning and the projection head), so that every weight on
    the path from image to logit is 1-Lipschitz."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.Embedding)):
            nn.utils.parametrizations.spectral_norm(layer)
