"""BatchNorm for the generators: plain, or class-conditional."""

from __future__ import annotations

import torch
from torch import nn

from gankit.models.conditioning import embed


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine, then a per-class gain and bias (de Vries et al. 2017;
    G's side of the projection cGAN, Miyato & Koyama 2018). Gains start at 1, biases at 0."""

    def __init__(self, features: int, num_classes: int, dims: int, momentum: float, eps: float):
        super().__init__()
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.norm = norm(features, affine=False, momentum=momentum, eps=eps)
        self.gain = nn.Embedding(num_classes, features)
        self.bias = nn.Embedding(num_classes, features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        shape = (-1, x.shape[1]) + (1,) * (x.dim() - 2)  # (N, F) or (N, F, 1, 1)
        gain, bias = embed(self.gain, labels).view(shape), embed(self.bias, labels).view(shape)
        return self.norm(x) * gain + bias


def batch_norm(
    features: int, num_classes: int, conditional: bool, dims: int, momentum: float, eps: float
) -> nn.Module:
    """BatchNorm1d/2d (dims 1 or 2), or its class-conditional form when `conditional`."""
    if conditional:
        return ConditionalBatchNorm(features, num_classes, dims, momentum, eps)
    norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return norm(features, momentum=momentum, eps=eps)


def run_layers(layers: nn.Sequential, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Applies layers in order, passing labels to the conditional BatchNorms."""
    for layer in layers:
        h = layer(h, labels) if isinstance(layer, ConditionalBatchNorm) else layer(h)
    return h
