"""Blocks shared by the architectures: label conditioning and weight initialisation."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class NoConditioning(nn.Module):
    """Unconditional input: passes features through and refuses labels."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.out_features = features

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is not None:
            raise ValueError("this model is unconditional (num_classes = 0) but labels were given")
        return x


class MultiplyEmbedding(nn.Module):
    """The reference CGAN's conditioning: x * Embedding(num_classes, features)(labels)."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_classes, features)
        self.out_features = features

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        _require_labels(labels)
        return x * self.embedding(labels)  # (N, F) * (N, F)


class ConcatOneHot(nn.Module):
    """The CGAN paper's conditioning: [x, one_hot(labels)] along the feature axis."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.out_features = features + num_classes

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        _require_labels(labels)
        one_hot = F.one_hot(labels, self.num_classes).to(x.dtype)  # (N, C)
        return torch.cat([x, one_hot], dim=1)  # (N, F + C)


def _require_labels(labels: torch.Tensor | None) -> None:
    if labels is None:
        raise ValueError("this model is conditional: pass labels (int64 tensor of shape (N,))")


CONDITIONING = {"none": NoConditioning, "multiply": MultiplyEmbedding, "concat": ConcatOneHot}


@torch.no_grad()
def keras_init_(module: nn.Module) -> None:
    """Keras defaults: Dense Glorot-uniform with zero bias, Embedding U(-0.05, 0.05)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Embedding):
            nn.init.uniform_(layer.weight, -0.05, 0.05)


def torch_init_(module: nn.Module) -> None:
    """PyTorch's own layer defaults: nothing to do."""


INITS = {"keras": keras_init_, "torch": torch_init_}
