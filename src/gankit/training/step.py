"""One discriminator step and one generator step, as plain functions, and `train_iteration`:
`d_steps` of the first and one of the second on freshly drawn batches.

Both return detached 0-d tensors rather than floats: the loop sums them on the device and
synchronises with the host only when it logs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from gankit.augment import diff_augment
from gankit.config import RunConfig
from gankit.images import as_float
from gankit.losses import (
    LossFamily,
    adversarial_logits,
    d_real_bce_smoothed,
    get_loss,
    gradient_penalty,
    r1_penalty,
    rpgan_pairing,
)
from gankit.models.conditioning import CONDITIONING
from gankit.training.optim import ema_decay, lr_factor, set_learning_rate, update_ema
from gankit.training.state import TrainState

Augment = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


@dataclass(frozen=True)
class StepOptions:
    """What the D and G steps compute besides the plain loss, fixed for a run.

    Attributes:
        loss: the loss family.
        separate_d_steps: two D optimizer steps (real, then fake) instead of one on the sum.
        label_smoothing: one-sided smoothing of D's real target (BCE losses).
        gp_weight: WGAN-GP gradient-penalty weight, or None.
        r1_gamma: R1 penalty gamma, or None.
        r2_gamma: R2 (the same penalty on the fake batch) gamma, or None.
        acgan_weight: weight of the auxiliary class cross-entropy, or None (not ACGAN).
        augment: DiffAugment applied to every image D sees, or None.
        autocast: dtype of G's and D's forward passes (torch.bfloat16), or None for fp32; the
            losses are always computed in fp32.
        joint_d_forward: D's step runs one forward over the real and fake batches together.
    """

    loss: LossFamily
    separate_d_steps: bool = False
    label_smoothing: float = 0.0
    gp_weight: float | None = None
    r1_gamma: float | None = None
    r2_gamma: float | None = None
    acgan_weight: float | None = None
    augment: Augment | None = None
    autocast: torch.dtype | None = None
    joint_d_forward: bool = False

    @classmethod
    def from_config(cls, config: RunConfig) -> StepOptions:
        train, conditioning = config.train, config.model.conditioning
        return cls(
            loss=get_loss(train.loss),
            separate_d_steps=config.quirks.separate_d_steps,
            label_smoothing=train.label_smoothing,
            gp_weight=train.gp_weight,
            r1_gamma=train.r1_gamma,
            r2_gamma=train.r2_gamma,
            acgan_weight=train.acgan_weight if CONDITIONING[conditioning].classifies else None,
            augment=diff_augment if train.diffaugment else None,
            autocast=torch.bfloat16 if train.precision == "bf16" else None,
            joint_d_forward=train.joint_d_forward,
        )

    def forward(self, module: nn.Module, *args: torch.Tensor | None) -> Any:
        """module(*args), under autocast when `autocast` is set; outputs come back as fp32."""
        if self.autocast is None:
            return module(*args)
        device = next(a for a in args if a is not None).device.type
        with torch.autocast(device, dtype=self.autocast):
            output = module(*args)
        if isinstance(output, tuple):
            return tuple(o.float() for o in output)
        return output.float()


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


def _d_loss(
    output: Any,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    real: bool,
    options: StepOptions,
) -> tuple[torch.Tensor, torch.Tensor]:
    """D's loss on one batch's output (real or fake), with its class and R1 terms; and the
    logits."""
    logits = adversarial_logits(output)
    if not real:
        loss = options.loss.d_fake(logits)
    elif options.label_smoothing:
        loss = d_real_bce_smoothed(logits, options.label_smoothing)
    else:
        loss = options.loss.d_real(logits)
    if options.acgan_weight is not None:
        loss = loss + options.acgan_weight * F.cross_entropy(output[1], labels)
    gamma = options.r1_gamma if real else options.r2_gamma
    if gamma:
        loss = loss + 0.5 * gamma * r1_penalty(images, logits)
    return loss, logits


def _d_term(
    discriminator: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    real: bool,
    options: StepOptions,
    rng: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """D's loss on one batch (real or fake), with its class and R1 (R2) terms; and the logits."""
    if options.r1_gamma if real else options.r2_gamma:
        images = images.detach().requires_grad_(True)
    seen = options.augment(images, rng) if options.augment else images
    output = options.forward(discriminator, seen, labels)
    return _d_loss(output, images, labels, real, options)


def _d_terms_joint(
    discriminator: nn.Module,
    real_images: torch.Tensor,
    real_labels: torch.Tensor | None,
    fake_images: torch.Tensor,
    fake_labels: torch.Tensor | None,
    options: StepOptions,
    rng: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`_d_term` of the real and of the fake batch from one forward of D over both batches
    (`train.joint_d_forward`). Each image's output is what its own batch's forward gives, as D
    has no batch-coupled layer (the config refuses one); the augmentation draws come in the
    same order. Spectral norm's power iteration, one per forward in training mode, then runs
    once per D step instead of twice (as in BigGAN's implementation, which concatenates too)."""
    real_seen = options.augment(real_images, rng) if options.augment else real_images
    fake_seen = options.augment(fake_images, rng) if options.augment else fake_images
    labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
    output = options.forward(discriminator, torch.cat([real_seen, fake_seen]), labels)
    # the first half of the outputs is the real batch's (N, or N / m with packing)
    n = len(adversarial_logits(output)) // 2
    if isinstance(output, tuple):  # ACGAN: (logits, class logits), each split at n
        real_out, fake_out = tuple(o[:n] for o in output), tuple(o[n:] for o in output)
    else:
        real_out, fake_out = output[:n], output[n:]
    loss_real, real_logits = _d_loss(real_out, real_images, real_labels, True, options)
    loss_fake, fake_logits = _d_loss(fake_out, fake_images, fake_labels, False, options)
    return loss_real, real_logits, loss_fake, fake_logits


def discriminator_step(
    discriminator: nn.Module,
    opt_d: torch.optim.Optimizer,
    real_images: torch.Tensor,
    real_labels: torch.Tensor | None,
    fake_images: torch.Tensor,
    fake_labels: torch.Tensor | None,
    options: StepOptions,
    rng: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Updates D on a real and a fake batch.

    With `options.separate_d_steps` D takes two optimizer steps, first on the real batch, then
    on the fake batch (the reference's two `train_on_batch` calls); otherwise one step on the
    sum, plus the gradient penalty when `gp_weight` is set.

    Returns:
        d_loss (mean of the real and fake terms, as Keras reports it), d_acc_real and
        d_acc_fake (fraction of logits on the correct side of 0).
    """
    opt_d.zero_grad(set_to_none=True)
    if options.joint_d_forward:  # one step on the sum (the config allows nothing else)
        loss_real, real_logits, loss_fake, fake_logits = _d_terms_joint(
            discriminator, real_images, real_labels, fake_images, fake_labels, options, rng
        )
    else:
        loss_real, real_logits = _d_term(
            discriminator, real_images, real_labels, True, options, rng
        )
        if options.separate_d_steps:
            loss_real.backward()
            opt_d.step()
            opt_d.zero_grad(set_to_none=True)
        loss_fake, fake_logits = _d_term(
            discriminator, fake_images, fake_labels, False, options, rng
        )
    if options.separate_d_steps:
        loss_fake.backward()
    else:
        total = loss_real + loss_fake
        if options.loss.relativistic:  # the config refuses separate steps with it
            pairing = rpgan_pairing(real_logits, fake_logits)
            total = total + pairing
            # each logged term holds the pairing, so d_loss is the pairing plus the penalties' mean
            loss_real, loss_fake = loss_real + pairing, loss_fake + pairing
        if options.gp_weight:
            penalty = gradient_penalty(discriminator, real_images, fake_images, real_labels, rng)
            total = total + options.gp_weight * penalty
        total.backward()
    opt_d.step()
    return _d_figures(loss_real, real_logits, loss_fake, fake_logits)


def _d_figures(
    loss_real: torch.Tensor,
    real_logits: torch.Tensor,
    loss_fake: torch.Tensor,
    fake_logits: torch.Tensor,
) -> dict[str, torch.Tensor]:
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
    options: StepOptions,
    rng: torch.Generator | None = None,
    fakes: torch.Tensor | None = None,
    real: tuple[torch.Tensor, torch.Tensor | None] | None = None,
) -> dict[str, torch.Tensor]:
    """Updates G through a frozen D (the reference's "combined" model).

    D keeps its mode (Dropout stays active, as in Keras) but gets no weight gradients:
    `requires_grad_(False)` skips them instead of computing and discarding them. `fakes`, when
    given, are G(z, labels) made earlier with their graph (`train.reuse_fakes`), so G does not
    run again. A relativistic loss pairs the fakes with D's logits of `real` (D as it is now,
    without a graph: nothing of G flows through them).
    """
    discriminator.requires_grad_(False)
    try:
        opt_g.zero_grad(set_to_none=True)
        if fakes is None:
            fakes = options.forward(generator, z, labels)
        seen = options.augment(fakes, rng) if options.augment else fakes
        output = options.forward(discriminator, seen, labels)
        g_loss = options.loss.g(adversarial_logits(output))
        if options.loss.relativistic:
            if real is None:
                raise ValueError("a relativistic loss needs the real batch in G's step")
            real_images, real_labels = real
            with torch.no_grad():
                real_seen = options.augment(real_images, rng) if options.augment else real_images
                real_logits = adversarial_logits(
                    options.forward(discriminator, real_seen, real_labels)
                )
            g_loss = g_loss + rpgan_pairing(adversarial_logits(output), real_logits)
        if options.acgan_weight is not None:
            g_loss = g_loss + options.acgan_weight * F.cross_entropy(output[1], labels)
        g_loss.backward()
        opt_g.step()
    finally:
        discriminator.requires_grad_(True)
    return {"g_loss": g_loss.detach()}


def train_iteration(
    state: TrainState,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: RunConfig,
    options: StepOptions,
    world_size: int = 1,
) -> torch.Tensor:
    """`d_steps` D updates and one G update on batches drawn with replacement (no host sync).

    `images` are the dataset's uint8 pixels (N, C, H, W) (each batch is converted to [-1, 1]
    as it is drawn) or float images already in [-1, 1]. Under DDP each of the `world_size`
    processes draws batch_size / world_size images.

    Returns:
        (4,) tensor on the device: d_loss, d_acc_real, d_acc_fake (last D step), g_loss.
    """
    quirks, rng, classes = config.quirks, state.rng, state.num_classes
    batch, latent = config.train.batch_size // world_size, config.model.latent_dim
    device = images.device
    optim = config.optim
    factor = lr_factor(optim.lr_decay, state.step, config.train.iterations, optim.lr_decay_start)
    set_learning_rate(state.opt_d, optim.lr_d * factor)
    set_learning_rate(state.opt_g, optim.lr_g * factor)
    for _ in range(config.train.d_steps):
        idx = torch.randint(len(images), (batch,), device=device, generator=rng)
        real, real_labels = as_float(images[idx]), labels[idx] if classes else None
        z = torch.randn(batch, latent, device=device, generator=rng)
        fake_labels = real_labels
        if classes and not quirks.real_labels_for_fakes:
            fake_labels = torch.randint(classes, (batch,), device=device, generator=rng)
        # through DDP's G: its forward first broadcasts rank 0's BatchNorm statistics, so every
        # rank makes fakes with the same (checkpointed) statistics
        if config.train.reuse_fakes:  # with their graph, for G's step (d_steps is 1)
            kept = options.forward(state.generator_train, z, fake_labels)
            fakes = kept.detach()
        else:
            kept = None
            fakes = make_fakes(state.generator_train, z, fake_labels, quirks.g_eval_for_fakes)
        d_out = discriminator_step(
            state.discriminator_train,
            state.opt_d,
            real,
            real_labels,
            fakes,
            fake_labels,
            options,
            rng,
        )
    g_labels = fake_labels  # reused fakes: G's step keeps their noise and labels
    if kept is None:
        if not quirks.reuse_noise:
            z = torch.randn(batch, latent, device=device, generator=rng)
        g_labels = (
            torch.randint(classes, (batch,), device=device, generator=rng) if classes else None
        )
    # G steps through D's plain module: D is frozen there, so DDP has nothing to all-reduce
    paired = (real, real_labels) if options.loss.relativistic else None
    g_out = generator_step(
        state.generator_train,
        state.discriminator,
        state.opt_g,
        z,
        g_labels,
        options,
        rng,
        kept,
        paired,
    )
    if state.generator_ema is not None:
        decay = ema_decay(config.train.ema_decay, state.step, config.train.ema_rampup)
        update_ema(state.generator_ema, state.generator, decay)
    return torch.stack([d_out["d_loss"], d_out["d_acc_real"], d_out["d_acc_fake"], g_out["g_loss"]])
