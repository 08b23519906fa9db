"""The training loop: the D and G steps, then plain `if step % every == 0` blocks.

The same loop runs alone or as one of torchrun's processes: only rank 0 writes the run folder,
and nothing lives in globals. It synchronises with the host only when it logs or checkpoints.
What happens before the first iteration is `setup.start`'s; when the iterations stop (the total,
a time limit, a budget) is `budget.StopPolicy`'s; the metrics rows are the `Logbook`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gankit.config import RunConfig
from gankit.models import memory_format
from gankit.plots import plot_losses, plot_metrics
from gankit.run import RunFolder
from gankit.sampling import fixed_noise_grid
from gankit.training import budget
from gankit.training.budget import Clock, StopPolicy
from gankit.training.distributed import World, gather_objects, init_world, shutdown
from gankit.training.evaluation import evaluate_during_training, training_evaluator
from gankit.training.hooks import TrainHooks
from gankit.training.logbook import Logbook, TrainingDiverged
from gankit.training.optim import ema_decay, lr_factor, set_learning_rate, update_ema
from gankit.training.setup import Started, start
from gankit.training.state import TrainState, rng_states, to_checkpoint
from gankit.training.step import StepOptions, discriminator_step, generator_step, make_fakes

logger = logging.getLogger(__name__)

ProgressHook = Callable[[int, dict[str, float]], None]

__all__ = ["TrainingDiverged", "train", "train_iteration"]


def train(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressHook | None = None,
    started: float | None = None,
    hooks: TrainHooks | None = None,
    clock: Clock | None = None,
) -> TrainState:
    """Trains a GAN or CGAN as `config` says and writes the run folder `out`.

    Under torchrun every process calls this; rank 0 alone writes the folder, and holds its
    lock for the whole run.

    Args:
        config: the run configuration (the seed is drawn and recorded when None; relative
            dataset paths are taken from the current directory and stored absolute).
        out: the run folder.
        resume: continue from the folder's newest readable checkpoint (a fresh start if it
            has none). `config` may differ from the stored one only in the keys
            `setup.RESUMABLE` names (iterations, device, threads, time limit, evaluation,
            budget); anything else is a ConfigError.
        overwrite: replace an existing non-empty folder, if it is a gankit run.
        progress: called as progress(step, row) after each logged window (rank 0).
        started: the clock's reading when the process started its work (the CLI's start),
            from which `budget.seconds` counts; default: now.
        hooks: called at fixed points of the run (tests inject faults through them).
        clock: seconds, monotonic, for every timing decision; default `time.monotonic`.

    Raises:
        TrainingDiverged: a loss became NaN or inf; the last checkpoint is kept.
        GankitError: a bad folder, configuration or dataset (RunFolderError, ConfigError, ...).
    """
    clock = clock or time.monotonic
    started = clock() if started is None else started
    folder = RunFolder(out)
    world = init_world(config.train.device)
    finished = False
    try:
        begun = start(config, folder, resume, overwrite, world)
        config = run_loop(begun, folder, world, progress, hooks or TrainHooks(), clock, started)
        finished = True
    finally:
        folder.unlock()
        shutdown(world, finished)
    if world.main:
        rows = folder.metrics()
        plot_metrics(rows, folder.path / "metrics.png")
        plot_losses(rows, folder.path / "loss.png", title=f"{config.preset or 'run'}: losses")
    return begun.state


@dataclass
class Loop:
    """What the iterations share besides the state."""

    config: RunConfig  # a budget's revisions replace it
    options: StepOptions
    folder: RunFolder
    world: World
    device: torch.device
    stop: StopPolicy
    logbook: Logbook
    hooks: TrainHooks
    progress: ProgressHook | None
    evaluator: Any  # the training evaluator on rank 0, else None


def run_loop(
    begun: Started,
    folder: RunFolder,
    world: World,
    progress: ProgressHook | None,
    hooks: TrainHooks,
    clock: Clock,
    started: float,
) -> RunConfig:
    """The iterations, each followed by `after_iteration`'s blocks; first, with a budget not
    yet planned, the plan. Returns the config the run ended with."""
    config, state, device = begun.config, begun.state, begun.device
    images = begun.dataset.images.to(device).contiguous(memory_format=memory_format(config.model))
    labels = begun.dataset.labels.to(device)
    evaluator = training_evaluator(config) if world.main else None
    options = StepOptions.from_config(config)
    if begun.planning:

        def iterate() -> None:
            train_iteration(state, images, labels, config, options, world.size)

        config = budget.plan_run(
            config, state, iterate, evaluator, device, folder, world, started, clock
        )
    stop = StopPolicy.for_run(config, world, state.step, started, begun.planning, clock)
    logbook = Logbook.open(config, folder, world, state.step, clock)
    loop = Loop(
        config,
        StepOptions.from_config(config),
        folder,
        world,
        device,
        stop,
        logbook,
        hooks,
        progress,
        evaluator,
    )
    finished = False
    try:
        while state.step < loop.config.train.iterations:
            hooks.before_iteration(state.step + 1, world)
            logbook.add(
                train_iteration(state, images, labels, loop.config, loop.options, world.size)
            )
            state.step += 1
            if after_iteration(loop, state):
                break
        finished = True
    finally:
        logbook.close(loop.config if finished else None)
    return loop.config


def after_iteration(loop: Loop, state: TrainState) -> bool:
    """Logs, grids, evaluations and checkpoints due at `state.step`; True to stop early."""
    step, world, folder, logbook = state.step, loop.world, loop.folder, loop.logbook
    logs = step % loop.config.schedule.log_every == 0
    if logs and (revised := loop.stop.revised(loop.config, step)) is not None:
        loop.config = revised
        if world.main:
            folder.write_config(revised.to_dict())
    config, sched = loop.config, loop.config.schedule
    out_of_time = loop.stop.out_of_time(logs)
    last = step == config.train.iterations or out_of_time
    if logs or last:
        row = logbook.close_window(step)
        state.metrics.update(row)
        if world.main and loop.progress is not None:
            loop.progress(step, row)
    if world.main and (step % sched.sample_every == 0 or last):
        fixed_noise_grid(state.sampler, state.fixed_z, state.fixed_labels, folder.grid_path(step))
        if logbook.board is not None:
            logbook.board.grid(folder.grid_path(step), step)
    # the same decision on every rank (training_evaluator scores the end of runs with an
    # evaluation schedule or a time limit): every rank checks (a collective), rank 0 evaluates
    due = sched.eval_every is not None and step % sched.eval_every == 0
    final = last and (
        sched.eval_every is not None or sched.time_limit is not None or config.budget.seconds
    )
    if due or final:
        logbook.check_finite(step)
        if loop.evaluator is not None:
            logbook.record(
                evaluate_during_training(state, loop.evaluator, config, folder, loop.device)
            )
    if step % sched.checkpoint_every == 0 or last:
        logbook.check_finite(step)
        save(state, config, loop.device, folder, world, loop.hooks)
    if out_of_time and world.main and (replayable := budget.stopped_at(config, step)):
        loop.config = replayable  # config.json replays the run that was cut short
        folder.write_config(replayable.to_dict())
    if out_of_time:
        logger.info(
            "time limit reached at iteration %d (of %d planned)", step, config.train.iterations
        )
    return out_of_time


def save(
    state: TrainState,
    config: RunConfig,
    device: torch.device,
    folder: RunFolder,
    world: World,
    hooks: TrainHooks | None = None,
) -> None:
    """A checkpoint with every rank's RNG states, written by rank 0."""
    rng = rng_states(state, device)
    if world.distributed:
        rng = {"ranks": gather_objects({k: v.cpu() for k, v in rng.items()}, world)}
    if world.main:
        checkpoint = to_checkpoint(state, config, device, rng)
        step = state.step
        before_rename = (lambda: hooks.before_checkpoint_rename(step)) if hooks else None
        folder.save_checkpoint(checkpoint, config.schedule.keep_checkpoints, before_rename)


def train_iteration(
    state: TrainState,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: RunConfig,
    options: StepOptions,
    world_size: int = 1,
) -> torch.Tensor:
    """`d_steps` D updates and one G update on batches drawn with replacement (no host sync).

    Under DDP each of the `world_size` processes draws batch_size / world_size images.

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
        real, real_labels = images[idx], labels[idx] if classes else None
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
    g_out = generator_step(
        state.generator_train, state.discriminator, state.opt_g, z, g_labels, options, rng, kept
    )
    if state.generator_ema is not None:
        decay = ema_decay(config.train.ema_decay, state.step, config.train.ema_rampup)
        update_ema(state.generator_ema, state.generator, decay)
    return torch.stack([d_out["d_loss"], d_out["d_acc_real"], d_out["d_acc_fake"], g_out["g_loss"]])
