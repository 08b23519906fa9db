"""How labels enter G and D: the input conditioning modules, D's output head, and the table
that says, for each conditioning method, where its labels go."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from gankit.errors import UsageError


def check_labels(labels: torch.Tensor | None, num_classes: int, *, values: bool = True) -> None:
    """Raises ValueError unless `labels` suit a model with `num_classes` classes (0: none).

    Conditional models need int labels (N,) in 0..C-1 or soft labels (N, C); unconditional ones
    refuse labels. `values=False` skips the range check, which reads the labels on the host:
    the models' forward passes skip it so that training never waits on a host sync.
    """
    if labels is None:
        if num_classes > 0:
            raise UsageError(
                f"this model is conditional ({num_classes} classes): pass labels "
                "(int64 tensor of shape (N,))"
            )
        return
    if num_classes == 0:
        raise UsageError("this model is unconditional (num_classes = 0) but labels were given")
    if labels.is_floating_point():  # soft labels (N, C), for class morphing
        if labels.dim() != 2 or labels.shape[1] != num_classes:
            raise UsageError(
                f"soft labels must have shape (N, {num_classes}), got {tuple(labels.shape)}"
            )
        return
    if values and labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0].item()
        raise UsageError(f"label {bad} is outside the model's classes 0..{num_classes - 1}")


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


class LabelFreeInput(nn.Module):
    """An input that labels do not enter: passes features through (they may enter elsewhere,
    through G's conditional BatchNorm or D's output head)."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.out_features = features

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return x


class MultiplyEmbedding(nn.Module):
    """The reference CGAN's conditioning: x * Embedding(num_classes, features)(labels)."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_classes, features)
        self.out_features = features

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return x * embed(self.embedding, labels)  # (N, F) * (N, F)


class ConcatOneHot(nn.Module):
    """The CGAN paper's conditioning: [x, one_hot(labels)] along the feature axis."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.out_features = features + num_classes

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, one_hot(labels, self.num_classes, x.dtype)], dim=1)  # (N, F + C)


INPUTS = {"label-free": LabelFreeInput, "multiply": MultiplyEmbedding, "concat": ConcatOneHot}


@dataclass(frozen=True)
class Conditioning:
    """Where one conditioning method puts the labels.

    Attributes:
        g_input: how labels enter G's input (a key of INPUTS).
        d_input: how labels enter D's input (a key of INPUTS).
        g_batchnorm: G's BatchNorms take a per-class gain and bias.
        d_head: D's output head: "plain", "projection" (+ <embed(y), h>), "acgan" (class
            logits; D does not read the labels) or "projection-ac" (both: the projection term
            and class logits).
    """

    g_input: str
    d_input: str
    g_batchnorm: bool = False
    d_head: str = "plain"

    @property
    def classifies(self) -> bool:
        """D also predicts the class, trained with the ACGAN cross-entropy (`acgan_weight`)."""
        return self.d_head in ("acgan", "projection-ac")

    @property
    def d_reads_labels(self) -> bool:
        return self.d_head != "acgan"


CONDITIONING = {
    "none": Conditioning("label-free", "label-free"),
    "multiply": Conditioning("multiply", "multiply"),
    "concat": Conditioning("concat", "concat"),
    "projection": Conditioning("label-free", "label-free", g_batchnorm=True, d_head="projection"),
    "acgan": Conditioning("concat", "label-free", d_head="acgan"),
    # projection D with an auxiliary classifier on the same features (as in P2GAN, Han et al.
    # 2021): the class term gives G a direct class signal from the first iterations
    "projection-ac": Conditioning(
        "label-free", "label-free", g_batchnorm=True, d_head="projection-ac"
    ),
    # projection D; G reads the class twice, from a one-hot appended to z (the CGAN paper's
    # input) and through its conditional BatchNorms, so its first layer is class-specific too
    "projection-concat": Conditioning(
        "concat", "label-free", g_batchnorm=True, d_head="projection"
    ),
}


class OutputHead(nn.Module):
    """D's last layer: logits (N,), plus the projection term or the ACGAN class logits.

    projection: l = w.h + b + <embed(y), h> (Miyato & Koyama 2018); acgan: returns
    (l, class_logits (N, C)) (Odena et al. 2017); projection-ac: the projection's l and the
    class logits.
    """

    def __init__(self, features: int, num_classes: int, head: str) -> None:
        super().__init__()
        self.head = head
        self.linear = nn.Linear(features, 1)
        if head in ("projection", "projection-ac"):
            self.embed = nn.Embedding(num_classes, features)
            nn.init.uniform_(self.embed.weight, -0.05, 0.05)
        if head in ("acgan", "projection-ac"):
            self.classes = nn.Linear(features, num_classes)

    def forward(
        self, h: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits = self.linear(h).squeeze(1)  # (N, 1) -> (N,)
        if self.head in ("projection", "projection-ac"):
            logits = logits + (embed(self.embed, labels) * h).sum(1)
        if self.head in ("acgan", "projection-ac"):
            return logits, self.classes(h)
        return logits
