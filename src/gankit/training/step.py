"""One discriminator step and one generator step, as plain functions.

Both return detached 0-d tensors rather than floats: the loop sums them on the device and
synchronises with the host only when it logs.
"""

from __future__ import annotations

import torch
from torch import nn

from gankit.config import QuirksConfig
from gankit.losses import LossFamily


def make_fakes(
    generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None, inference_mode: bool
) -> torch.Tensor:
    """G's images for D's step, without a graph.

    With `inference_mode` G runs as Keras' `predict` does: BatchNorm on its moving statistics
    (and no update of them). Otherwise BatchNorm uses, and updates, batch statistics.
    """
    with torch.no_grad():
        if not inference_mode:
            return generator(z, labels)
        generator.eval()
        try:
            return generator(z, labels)
        finally:
            generator.train()


def discriminator_step(
    discriminator: nn.Module,
    opt_d: torch.optim.Optimizer,
    real_images: torch.Tensor,
    real_labels: torch.Tensor | None,
    fake_images: torch.Tensor,
    fake_labels: torch.Tensor | None,
    loss: LossFamily,
    quirks: QuirksConfig,
) -> dict[str, torch.Tensor]:
    """Updates D on a real and a fake batch.

    With `quirks.separate_d_steps` D takes two optimizer steps, first on the real batch, then on
    the fake batch (the reference's two `train_on_batch` calls); otherwise one step on the sum.

    Returns:
        d_loss (mean of the real and fake terms, as Keras reports it), d_acc_real and
        d_acc_fake (fraction of logits on the correct side of 0).
    """
    if quirks.separate_d_steps:
        opt_d.zero_grad(set_to_none=True)
        real_logits = discriminator(real_images, real_labels)
        loss_real = loss.d_real(real_logits)
        loss_real.backward()
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
        fake_logits = discriminator(fake_images, fake_labels)
        loss_fake = loss.d_fake(fake_logits)
        loss_fake.backward()
        opt_d.step()
    else:
        opt_d.zero_grad(set_to_none=True)
        real_logits = discriminator(real_images, real_labels)
        fake_logits = discriminator(fake_images, fake_labels)
        loss_real, loss_fake = loss.d_real(real_logits), loss.d_fake(fake_logits)
        (loss_real + loss_fake).backward()
        opt_d.step()
    return {
        "d_loss": (0.5 * (loss_real + loss_fake)).detach(),
        "d_acc_real": (real_logits.detach() > 0).float().mean(),
        "d_acc_fake": (fake_logits.detach() < 0).float().mean(),
    }


def generator_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    z: torch.Tensor,
    labels: torch.Tensor | None,
    loss: LossFamily,
) -> dict[str, torch.Tensor]:
    """Updates G through a frozen D (the reference's "combined" model).

    D keeps its mode (Dropout stays active, as in Keras) but gets no weight gradients:
    `requires_grad_(False)` skips them instead of computing and discarding them.
    """
    discriminator.requires_grad_(False)
    try:
        opt_g.zero_grad(set_to_none=True)
        fake_logits = discriminator(generator(z, labels), labels)
        g_loss = loss.g(fake_logits)
        g_loss.backward()
        opt_g.step()
    finally:
        discriminator.requires_grad_(True)
    return {"g_loss": g_loss.detach()}
