"""What a checkpoint restores: models, optimizers, RNGs, EMA and the iteration count."""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from gankit.checkpoint import Checkpoint
from gankit.config import RunConfig
from gankit.data import ImageDataset
from gankit.errors import CheckpointError, ConfigError, RunFolderError
from gankit.models import build_models, memory_format
from gankit.models.dropout import set_dropout_generator
from gankit.models.normalization import ConditionalBatchNorm
from gankit.training.distributed import SINGLE, World, unwrap, wrap
from gankit.training.optim import make_adam

logger = logging.getLogger(__name__)

RANK_STRIDE = 1_000_003  # rank r draws its batches from the stream seeded seed + r * stride
DROPOUT_STREAM = 1  # tag of D's dropout stream in its seed sequence (seed, rank, tag)


@dataclass
class TrainState:
    """What a checkpoint restores: models, optimizers, RNGs and the iteration count."""

    step: int
    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    rng: torch.Generator  # batch indices, noise and labels
    dropout_rng: torch.Generator  # D's dropout masks (its own stream on each rank)
    fixed_z: torch.Tensor  # (N, latent_dim)
    fixed_labels: torch.Tensor | None  # (N,) or None for a GAN
    num_classes: int
    image_shape: tuple[int, int, int]
    metrics: dict[str, Any] = field(default_factory=dict)
    generator_ema: nn.Module | None = None  # EMA of G's weights, when train.ema_decay is set
    generator_train: nn.Module | None = (
        None  # G as the steps call it (DDP-wrapped when distributed)
    )
    discriminator_train: nn.Module | None = None  # D as its own step calls it
    # this process's training speed: (iterations, seconds spent in them), without the grids,
    # evaluations and checkpoints between them (the loop fills it in; not checkpointed)
    trained: tuple[int, float] = (0, 0.0)

    def __post_init__(self) -> None:
        self.generator_train = self.generator_train or self.generator
        self.discriminator_train = self.discriminator_train or self.discriminator

    @property
    def sampler(self) -> nn.Module:
        """The generator that grids and evaluations use: the EMA when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator


def make_optimizer(params: Any, lr: float, config: RunConfig) -> torch.optim.Adam:
    optim = config.optim
    return make_adam(params, lr, (optim.beta1, optim.beta2), optim.eps)


def dropout_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s dropout stream: independent of the other ranks' streams and of
    the training stream (numpy's SeedSequence hashes (seed, rank, tag) to 64 bits)."""
    sequence = np.random.SeedSequence([seed, rank, DROPOUT_STREAM])
    return int(sequence.generate_state(1, np.uint64)[0])


BATCH_COUPLED = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, ConditionalBatchNorm)


def batch_coupled(module: nn.Module) -> bool:
    """Whether an output of `module` depends on the other images of its batch (in training)."""
    return any(isinstance(m, BATCH_COUPLED) for m in module.modules())


def build_state(
    config: RunConfig, dataset: ImageDataset, device: torch.device, world: World = SINGLE
) -> TrainState:
    """Fresh models (seeded alike on every rank), optimizers, the training RNG (its own stream
    on each rank) and the fixed noise."""
    seed = config.train.seed
    torch.manual_seed(seed)
    num_classes = dataset.num_classes if config.conditional else 0
    generator, discriminator = build_models(config.model, dataset.image_shape, num_classes)
    if config.train.joint_d_forward and batch_coupled(discriminator):
        raise ConfigError(
            "train.joint_d_forward: this discriminator has a batch-coupled layer (BatchNorm), "
            "so a forward over real and fake together would mix their statistics"
        )
    layout = memory_format(config.model)
    generator.to(device, memory_format=layout)
    discriminator.to(device, memory_format=layout)
    generator_train = wrap(generator.train(), world, config.train.sync_bn, device)
    discriminator_train = wrap(discriminator.train(), world, False, device)
    generator, discriminator = unwrap(generator_train), unwrap(discriminator_train)
    opt_g = make_optimizer(generator.parameters(), config.optim.lr_g, config)
    opt_d = make_optimizer(discriminator.parameters(), config.optim.lr_d, config)
    rng = torch.Generator(device=device).manual_seed(seed + RANK_STRIDE * world.rank)
    dropout_rng = torch.Generator(device=device).manual_seed(dropout_seed(seed, world.rank))
    set_dropout_generator(discriminator, dropout_rng)
    fixed_rng = torch.Generator().manual_seed(seed + 1)  # its own stream: grids stay comparable
    n_fixed = num_classes if num_classes else 25
    fixed_z = torch.randn(n_fixed, config.model.latent_dim, generator=fixed_rng).to(device)
    fixed_labels = torch.arange(num_classes, device=device) if num_classes else None
    ema = copy.deepcopy(generator).requires_grad_(False) if config.train.ema_decay else None
    if config.train.compile:
        compile_models(device, generator, discriminator)
    return TrainState(
        0,
        generator,
        discriminator,
        opt_g,
        opt_d,
        rng,
        dropout_rng,
        fixed_z,
        fixed_labels,
        num_classes,
        dataset.image_shape,
        generator_ema=ema,
        generator_train=generator_train,
        discriminator_train=discriminator_train,
    )


def rng_states(state: TrainState, device: torch.device) -> dict[str, torch.Tensor]:
    """This process's RNG states: the training and dropout streams, torch's global CPU RNG and
    CUDA's."""
    rng = {
        "training": state.rng.get_state(),
        "dropout": state.dropout_rng.get_state(),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def to_checkpoint(
    state: TrainState, config: RunConfig, device: torch.device, rng: dict | None = None
) -> Checkpoint:
    """The state as a checkpoint; `rng` is {"ranks": [...]} for a distributed run."""
    rng = rng if rng is not None else rng_states(state, device)
    fixed = fixed_noise(state)
    return Checkpoint(
        state.step,
        config.to_dict(),
        state.image_shape,
        state.num_classes,
        state.generator.state_dict(),
        state.discriminator.state_dict(),
        state.opt_g.state_dict(),
        state.opt_d.state_dict(),
        rng,
        fixed,
        dict(state.metrics),
        None if state.generator_ema is None else state.generator_ema.state_dict(),
    )


def restore_state(
    state: TrainState, checkpoint: Checkpoint, device: torch.device, world: World = SINGLE
) -> None:
    rng = checkpoint.rng
    if "ranks" in rng or world.distributed:
        saved = len(rng.get("ranks", [rng]))
        if saved != world.size:
            raise RunFolderError(
                f"the checkpoint holds {saved} ranks' RNG states; this job has {world.size}"
            )
        rng = rng["ranks"][world.rank]
    state.step = checkpoint.step
    state.generator.load_state_dict(checkpoint.generator)
    state.discriminator.load_state_dict(checkpoint.discriminator)
    load_optimizer_state(state.opt_g, checkpoint.opt_g, "opt_g")
    load_optimizer_state(state.opt_d, checkpoint.opt_d, "opt_d")
    if state.generator_ema is not None:
        state.generator_ema.load_state_dict(checkpoint.generator_ema)
    state.rng.set_state(rng["training"].cpu())
    if "dropout" in rng:
        state.dropout_rng.set_state(rng["dropout"].cpu())
    else:  # format 1: dropout drew from torch's global generator, restored below
        logger.warning(
            "the checkpoint has no dropout stream (written by an older gankit); D's dropout now "
            "draws from a fresh stream, so this resume is not bit-exact with the original run"
        )
    torch.set_rng_state(rng["torch"].cpu())
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"].cpu(), device)
    state.fixed_z = checkpoint.fixed_noise["z"].to(device)
    labels = checkpoint.fixed_noise["labels"]
    state.fixed_labels = None if labels is None else labels.to(device)
    state.metrics = dict(checkpoint.metrics)


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, saved: dict[str, Any], name: str
) -> None:
    """`optimizer.load_state_dict(saved)`, refusing moments of another shape with a message
    naming the parameter, and keeping this optimizer's own `fused`/`foreach` choice (it depends
    on the device, not on the one that wrote the checkpoint)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, moments in saved["state"].items():
        index = int(index)
        shape = tuple(moments["exp_avg"].shape)
        if index >= len(params) or shape != tuple(params[index].shape):
            own = tuple(params[index].shape) if index < len(params) else "no parameter"
            raise CheckpointError(
                f"{name}: the checkpoint's state for parameter {index} has shape {shape}; this "
                f"model has {own}"
            )
    flags = [{k: g[k] for k in ("fused", "foreach")} for g in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    for group, own_flags in zip(optimizer.param_groups, flags, strict=True):
        group.update(own_flags)


def compile_models(device: torch.device, *modules: nn.Module) -> bool:
    """`module.compile()` in place (state-dict keys unchanged) when the compiler it needs is
    there: a C++ compiler on the CPU, Triton on CUDA. Otherwise warns and runs eagerly."""
    if device.type == "cuda":
        found = importlib.util.find_spec("triton") is not None
        missing = "the triton package"
    else:
        found = shutil.which(os.environ.get("CXX", "g++")) is not None
        missing = "a C++ compiler (g++ or $CXX)"
    if not found:
        logger.warning("train.compile: %s is missing; running without torch.compile", missing)
        return False
    for module in modules:
        module.compile()
    return True


def fixed_noise(state: TrainState) -> dict[str, torch.Tensor | None]:
    """The fixed noise and labels behind the progress grids, on the CPU (as saved)."""
    labels = None if state.fixed_labels is None else state.fixed_labels.cpu()
    return {"z": state.fixed_z.cpu(), "labels": labels}
