"""Blocks shared by the architectures: label conditioning, dropout and weight initialisation."""

from __future__ import annotations

import math

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


def embed(embedding: nn.Embedding, labels: torch.Tensor) -> torch.Tensor:
    """Class embedding of int labels (N,), or the weighted mix for soft labels (N, C) (floats:
    used to morph between classes)."""
    if labels.is_floating_point():
        return labels @ embedding.weight  # (N, C) @ (C, F) -> (N, F)
    return embedding(labels)


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot rows of int labels (N,); soft labels (N, C) pass through."""
    if labels.is_floating_point():
        return labels.to(dtype)
    return F.one_hot(labels, num_classes).to(dtype)


class MultiplyEmbedding(nn.Module):
    """The reference CGAN's conditioning: x * Embedding(num_classes, features)(labels)."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_classes, features)
        self.out_features = features

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        _require_labels(labels)
        return x * embed(self.embedding, labels)  # (N, F) * (N, F)


class ConcatOneHot(nn.Module):
    """The CGAN paper's conditioning: [x, one_hot(labels)] along the feature axis."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.out_features = features + num_classes

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        _require_labels(labels)
        return torch.cat([x, one_hot(labels, self.num_classes, x.dtype)], dim=1)  # (N, F + C)


def _require_labels(labels: torch.Tensor | None) -> None:
    if labels is None:
        raise ValueError("this model is conditional: pass labels (int64 tensor of shape (N,))")


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
        self.dims = dims

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        shape = (-1, x.shape[1]) + (1,) * (x.dim() - 2)  # (N, F) or (N, F, 1, 1)
        return self.norm(x) * embed(self.gain, labels).view(shape) + embed(self.bias, labels).view(
            shape
        )


def batch_norm(
    features: int, num_classes: int, conditional: bool, dims: int, momentum: float, eps: float
) -> nn.Module:
    if conditional:
        return ConditionalBatchNorm(features, num_classes, dims, momentum, eps)
    norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
    return norm(features, momentum=momentum, eps=eps)


def run_layers(layers: nn.Sequential, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Applies layers in order, passing labels to the conditional BatchNorms."""
    for layer in layers:
        h = layer(h, labels) if isinstance(layer, ConditionalBatchNorm) else layer(h)
    return h


CONDITIONING = {
    "none": NoConditioning,
    "multiply": MultiplyEmbedding,
    "concat": ConcatOneHot,
    "projection": NoConditioning,  # labels enter through cBN in G and the projection in D
    "acgan": NoConditioning,  # G: concat (below); D: unconditional input + a class head
}
G_INPUT = {"none": "none", "multiply": "multiply", "concat": "concat", "projection": "none",
           "acgan": "concat"}  # fmt: skip
D_INPUT = {"none": "none", "multiply": "multiply", "concat": "concat", "projection": "none",
           "acgan": "none"}  # fmt: skip


class OutputHead(nn.Module):
    """D's last layer: logits (N,), plus the projection term or the ACGAN class logits.

    projection: l = w.h + b + <embed(y), h>; acgan: returns (l, class_logits (N, C)).
    """

    def __init__(self, features: int, num_classes: int, conditioning: str) -> None:
        super().__init__()
        self.conditioning = conditioning
        self.linear = nn.Linear(features, 1)
        if conditioning == "projection":
            self.embed = nn.Embedding(num_classes, features)
            nn.init.uniform_(self.embed.weight, -0.05, 0.05)
        elif conditioning == "acgan":
            self.classes = nn.Linear(features, num_classes)

    def forward(
        self, h: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits = self.linear(h).squeeze(1)  # (N, 1) -> (N,)
        if self.conditioning == "projection":
            _require_labels(labels)
            return logits + (self.embed(labels) * h).sum(1)
        if self.conditioning == "acgan":
            return logits, self.classes(h)
        return logits


def check_labels(num_classes: int, labels: torch.Tensor | None) -> None:
    """A conditional model needs labels; an unconditional one refuses them."""
    if num_classes and labels is None:
        _require_labels(labels)
    if not num_classes and labels is not None:
        raise ValueError("this model is unconditional (num_classes = 0) but labels were given")


@torch.no_grad()
def keras_init_(module: nn.Module) -> None:
    """Keras defaults: Dense Glorot-uniform with zero bias, Embedding U(-0.05, 0.05).

    The gains and biases of conditional BatchNorm keep their own (1, 0) start.
    """
    skip = {id(m) for c in module.modules() if isinstance(c, ConditionalBatchNorm)
            for m in (c.gain, c.bias)}  # fmt: skip
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Embedding) and id(layer) not in skip:
            nn.init.uniform_(layer.weight, -0.05, 0.05)


@torch.no_grad()
def dcgan_init_(module: nn.Module) -> None:
    """Radford et al. 2016: conv and linear weights N(0, 0.02), BatchNorm gains N(1, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
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
    """Spectral normalisation (Miyato et al. 2018) of every linear and conv weight of D."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.Embedding)):
            nn.utils.parametrizations.spectral_norm(layer)


class Dropout(nn.Dropout):
    """`nn.Dropout` whose CPU masks come from 16-bit random draws, 4 per 64-bit word.

    Written by hand because PyTorch's CPU `bernoulli_` draws one full random number per element
    and costs about 16 ns per element: 15% of seed-cgan's step at batch 256. This mask costs
    about 3 ns per element. An element is kept with probability round((1 - p) * 2^16) / 2^16
    (within 2^-17 of 1 - p; PyTorch's CUDA dropout quantises to floats in the same way) and
    kept elements are scaled by 1 / (1 - p), as `nn.Dropout` does. The draws come from torch's
    default CPU generator, so `torch.manual_seed` and the checkpointed RNG state cover them.
    Other devices use PyTorch's own dropout (fused there).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        return x * dropout_mask(x.shape, self.p).to(x.dtype)


def dropout_mask(
    shape: torch.Size | tuple[int, ...], p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A float32 CPU mask of `shape`: 1 / (1 - p) where kept, 0 where dropped."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64)
    # the whole int64 range, so all 16 bits of every int16 view are uniform (random_() alone
    # would leave the top bit of each word at 0)
    words.random_(-(2**63), 2**63 - 1, generator=generator)
    draws = words.view(torch.int16)[:n].view(shape)  # uniform in [-32768, 32767]
    threshold = 32768 - round((1 - p) * 65536)  # keep draws >= threshold
    scale = 1 / (1 - p)
    # (draw - threshold + 1) is >= 1 exactly when the element is kept, <= 0 otherwise
    return draws.float().sub_(threshold - 1).mul_(scale).clamp_(0, scale)
