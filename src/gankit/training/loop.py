"""The training loop: plain `if step % every == 0` blocks around the D and G steps.

The same loop runs alone or as one of torchrun's processes: only rank 0 writes the run folder,
and nothing lives in globals. It synchronises with the host only when it logs or checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gankit.config import RunConfig, absolute_data_paths
from gankit.data import ImageDataset, load_dataset
from gankit.errors import ConfigError, RunFolderError
from gankit.models import memory_format
from gankit.plots import plot_losses, plot_metrics
from gankit.run import RunFolder
from gankit.sampling import fixed_noise_grid
from gankit.training import budget
from gankit.training.distributed import (
    SINGLE,
    World,
    broadcast_object,
    gather_objects,
    init_world,
    local_device,
    mean_across,
    shutdown,
)
from gankit.training.evaluation import evaluate_during_training, training_evaluator
from gankit.training.faults import Faults, kill_self
from gankit.training.optim import ema_decay, lr_factor, set_learning_rate, update_ema
from gankit.training.state import (
    TrainState,
    build_state,
    fixed_noise,
    restore_state,
    rng_states,
    to_checkpoint,
)
from gankit.training.step import StepOptions, discriminator_step, generator_step, make_fakes
from gankit.training.tensorboard import Board, require_tensorboard

logger = logging.getLogger(__name__)

ProgressHook = Callable[[int, dict[str, float]], None]
LOGGED = ("d_loss", "d_acc_real", "d_acc_fake", "g_loss")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or inf; the last checkpoint on disk is still good."""


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r} but CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"train.device = {name!r}; choose 'cpu', 'cuda' or 'cuda:N'")
    return device


def prepare_folder(folder: RunFolder, resume: bool, overwrite: bool, world: World) -> None:
    """Rank 0 creates or locks the folder; every rank learns whether that worked, so that a
    refused folder stops the whole job at once instead of leaving ranks > 0 waiting."""
    problem = None
    if world.main:
        try:
            if resume:
                folder.require_resumable()
                folder.lock()
                folder.remove_partial_writes()
            else:
                folder.create(overwrite)
        except RunFolderError as error:
            problem = error
    message = broadcast_object(None if problem is None else str(problem), world)
    if problem is not None:
        raise problem
    if message is not None:
        raise RunFolderError(message)


def check_config(config: RunConfig, world: World) -> RunConfig:
    """Draws the seed when missing (rank 0, for all) and refuses what DDP cannot do."""
    if config.train.seed is None:
        seed = broadcast_object(secrets.randbelow(2**31), world)
        config = config.with_overrides({"train.seed": seed})
        logger.info("no seed given; drew seed %d", seed)
    if config.train.batch_size % world.size:
        raise ConfigError(
            f"train.batch_size = {config.train.batch_size} (the global batch) is not divisible "
            f"by the {world.size} processes"
        )
    if world.distributed and (config.train.gp_weight or config.train.r1_gamma):
        raise ConfigError("gradient penalties (gp_weight, r1_gamma) are not supported under DDP")
    if config.train.tensorboard and world.main:
        require_tensorboard()  # before the folder is created
    return absolute_data_paths(config, Path.cwd())


def start(
    config: RunConfig, folder: RunFolder, resume: bool, overwrite: bool, world: World
) -> tuple[RunConfig, TrainState, ImageDataset, torch.device]:
    """Prepares the folder (rank 0), seed, data and state; restores the newest readable
    checkpoint (a resume with none restarts cleanly, dropping the dead run's metric rows)."""
    config = check_config(config, world)  # a bad config, device or dataset creates no folder
    device = resolve_device(local_device(config.train.device, world))
    data = config.data
    dataset = load_dataset(data.dataset, data.split, data.data_dir)
    prepare_folder(folder, resume, overwrite, world)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    state = build_state(config, dataset, device, world)
    found = folder.latest_readable(map_location=device) if resume else None
    if found is not None:
        restore_state(state, found[1], device, world)
        logger.info("resuming %s from iteration %d", folder.path, state.step)
    if world.main:
        if resume:
            folder.truncate_metrics(state.step)
        folder.write_config(config.to_dict())
        if not folder.fixed_noise_path.exists() or found is None:
            folder.save_fixed_noise(fixed_noise(state))
    return config, state, dataset, device


def train(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressHook | None = None,
    started: float | None = None,
) -> TrainState:
    """Trains a GAN or CGAN as `config` says and writes the run folder `out`.

    Under torchrun every process calls this; rank 0 alone writes the folder, and holds its
    lock for the whole run.

    Args:
        config: the run configuration (the seed is drawn and recorded when None; relative
            dataset paths are taken from the current directory and stored absolute).
        out: the run folder.
        resume: continue from the folder's newest readable checkpoint (a fresh start if it
            has none).
        overwrite: replace an existing non-empty folder, if it is a gankit run.
        progress: called as progress(step, row) after each logged window (rank 0).
        started: `time.monotonic()` when the process started its work (the CLI's start), for
            `budget.seconds`; default: now.

    Raises:
        TrainingDiverged: a loss became NaN or inf; the last checkpoint is kept.
        GankitError: a bad folder, configuration or dataset (RunFolderError, ConfigError, ...).
    """
    started = time.monotonic() if started is None else started
    folder = RunFolder(out)
    world = init_world(config.train.device)
    finished = False
    try:
        config, state, dataset, device = start(config, folder, resume, overwrite, world)
        run_loop(config, state, dataset, device, folder, world, progress, started)
        finished = True
    finally:
        folder.unlock()
        shutdown(world, finished)
    if world.main:
        rows = folder.metrics()
        plot_metrics(rows, folder.path / "metrics.png")
        plot_losses(rows, folder.path / "loss.png", title=f"{config.preset or 'run'}: losses")
    return state


@dataclass
class Loop:
    """What the iterations share besides the state: the run's fixed parts, the open metrics
    file, and the current logging window (values not yet synchronised with the host)."""

    config: RunConfig
    options: StepOptions
    folder: RunFolder
    world: World
    device: torch.device
    progress: ProgressHook | None
    evaluator: Any  # the training evaluator on rank 0, else None
    metrics_file: Any  # the open metrics.jsonl on rank 0, else None
    started: float = field(default_factory=time.monotonic)
    time_limit: float | None = None  # seconds from `started`: --time-limit or the budget's end
    window: list[torch.Tensor] = field(default_factory=list)
    window_start: float = field(default_factory=time.monotonic)
    window_step: int = 0
    faults: Faults = field(default_factory=Faults)  # test hooks (GANKIT_TEST_*), else none
    board: Board | None = None  # TensorBoard events on rank 0 with train.tensorboard, else None
    revising: bool = False  # this process planned the budget and may revise its total
    process_started: float = 0.0  # `time.monotonic()` at which the budget began
    start_step: int = 0  # the step training began from in this process

    def record(self, row: dict[str, Any]) -> None:
        """A metrics.jsonl row (rank 0), mirrored to TensorBoard when it is on."""
        write_row(self.metrics_file, row)
        if self.board is not None:
            self.board.row(row)


def run_loop(
    config: RunConfig,
    state: TrainState,
    dataset: ImageDataset,
    device: torch.device,
    folder: RunFolder,
    world: World,
    progress: ProgressHook | None,
    started: float | None = None,
) -> None:
    """The iterations, each followed by the plain `if step % every == 0` blocks of
    `after_iteration`; first, with a budget not yet planned, the plan."""
    images = dataset.images.to(device).contiguous(memory_format=memory_format(config.model))
    labels = dataset.labels.to(device)
    evaluator = training_evaluator(config) if world.main else None
    planning = config.budget.seconds is not None and not config.budget.planned
    if planning:
        options = StepOptions.from_config(config)

        def iterate() -> None:
            train_iteration(state, images, labels, config, options, world.size)

        started = time.monotonic() if started is None else started
        config = budget.plan_run(config, state, iterate, evaluator, device, folder, world, started)
    metrics_file = folder.open_metrics() if world.main else None
    board = Board(folder.path, state.step) if world.main and config.train.tensorboard else None
    loop = Loop(config, StepOptions.from_config(config), folder, world, device, progress,
                evaluator, metrics_file, window_step=state.step,
                faults=Faults.from_env(world), board=board,
                revising=planning and config.budget.revise,
                start_step=state.step)  # fmt: skip
    loop.process_started = loop.started if started is None else started
    loop.time_limit = budget.time_limit(config, loop.started - loop.process_started)
    finished = False
    try:
        while state.step < loop.config.train.iterations:
            loop.faults.before_iteration(state.step + 1, world)
            loop.window.append(
                train_iteration(state, images, labels, loop.config, loop.options, world.size)
            )
            state.step += 1
            if after_iteration(loop, state):
                break
        finished = True
    finally:
        if metrics_file is not None:
            metrics_file.close()
        if board is not None and finished:
            board.finish(loop.config)  # the configuration as hparams, with the final figures
        elif board is not None:
            board.close()


def after_iteration(loop: Loop, state: TrainState) -> bool:
    """Logs, grids, evaluations and checkpoints due at `state.step`; True to stop early."""
    logs = state.step % loop.config.schedule.log_every == 0
    if logs and loop.revising:
        revise_plan(loop, state.step)
    config, world, folder, step = loop.config, loop.world, loop.folder, state.step
    sched = config.schedule
    out_of_time = timed_out(loop.time_limit, loop.started, logs, world)
    last = step == config.train.iterations or out_of_time
    if logs or last:
        log(loop, state)
    if world.main and (step % sched.sample_every == 0 or last):
        fixed_noise_grid(state.sampler, state.fixed_z, state.fixed_labels, folder.grid_path(step))
        if loop.board is not None:
            loop.board.grid(folder.grid_path(step), step)
    # the same decision on every rank (training_evaluator scores the end of runs with an
    # evaluation schedule or a time limit): every rank checks (a collective), rank 0 evaluates
    due = sched.eval_every is not None and step % sched.eval_every == 0
    final = last and (
        sched.eval_every is not None or sched.time_limit is not None or config.budget.seconds
    )
    if due or final:
        check_finite(loop.window, step, loop.window_step, folder, world)
        if loop.evaluator is not None:
            row = evaluate_during_training(state, loop.evaluator, config, folder, loop.device)
            loop.record(row)
    if step % sched.checkpoint_every == 0 or last:
        check_finite(loop.window, step, loop.window_step, folder, world)
        save(state, config, loop.device, folder, world, loop.faults)
    if out_of_time:
        logger.info("time limit reached at iteration %d (of %d planned)", step,
                    config.train.iterations)  # fmt: skip
    return out_of_time


def revise_plan(loop: Loop, step: int) -> None:
    """Rank 0 revises the budget's total from the speed sustained so far (`budget.revise`),
    every rank takes it, and config.json records it. Once the learning rate has begun to decay
    the total is fixed, and this stops for good (the same decision on every rank)."""
    config = loop.config
    constant = budget.lr_constant_until(config, config.train.iterations)
    if constant is not None and step > constant:
        loop.revising = False
        return
    revised = None
    if loop.world.main:
        now = time.monotonic()
        revised = budget.revise(
            config, step, loop.start_step, now - loop.started, now - loop.process_started
        )
    if loop.world.distributed:
        revised = broadcast_object(revised, loop.world)
    if revised is None:
        return
    loop.config = revised
    if loop.world.main:
        loop.folder.write_config(revised.to_dict())
        logger.debug("budget: %d iterations at a sustained %.1f it/s (revised at %d)",
                     revised.train.iterations, revised.budget.revised_it_per_s, step)  # fmt: skip


def log(loop: Loop, state: TrainState) -> None:
    """Checks the window for NaNs, writes its means as a metrics row and starts a new one."""
    step = state.step
    check_finite(loop.window, step, loop.window_step, loop.folder, loop.world)
    seconds = time.monotonic() - loop.window_start
    row = log_window(loop.window, step, loop.window_step, seconds, loop.started, loop.world)
    loop.window, loop.window_start, loop.window_step = [], time.monotonic(), step
    state.metrics.update(row)
    if loop.world.main:
        loop.record(row)
        if loop.progress is not None:
            loop.progress(step, row)


def timed_out(limit: float | None, started: float, logs: bool, world: World) -> bool:
    """Past the wall-clock limit? Under DDP rank 0 decides, at log steps, for every rank."""
    if limit is None:
        return False
    if not world.distributed:
        return time.monotonic() - started > limit
    return bool(broadcast_object(time.monotonic() - started > limit, world)) if logs else False


def write_row(metrics_file: Any, row: dict[str, Any]) -> None:
    metrics_file.write(json.dumps(row) + "\n")
    metrics_file.flush()


def save(
    state: TrainState,
    config: RunConfig,
    device: torch.device,
    folder: RunFolder,
    world: World,
    faults: Faults | None = None,
) -> None:
    """A checkpoint with every rank's RNG states, written by rank 0."""
    rng = rng_states(state, device)
    if world.distributed:
        rng = {"ranks": gather_objects({k: v.cpu() for k, v in rng.items()}, world)}
    if world.main:
        checkpoint = to_checkpoint(state, config, device, rng)
        hook = kill_self if faults and faults.kill_in_checkpoint == state.step else None
        folder.save_checkpoint(checkpoint, config.schedule.keep_checkpoints, before_rename=hook)


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
            state.discriminator_train, state.opt_d, real, real_labels, fakes, fake_labels,
            options, rng,
        )  # fmt: skip
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


def check_finite(
    window: list[torch.Tensor],
    step: int,
    window_step: int,
    folder: RunFolder,
    world: World = SINGLE,
) -> None:
    """Raises TrainingDiverged when a value not yet checked is NaN or inf, on every rank at
    once (one host sync; under DDP one all-reduce)."""
    if not window:
        return
    nonfinite = (~torch.isfinite(torch.stack(window))).any(0).float()
    finite = (mean_across(nonfinite, world) == 0).tolist()
    if not all(finite):
        bad = ", ".join(k for k, ok in zip(LOGGED, finite, strict=True) if not ok)
        found = folder.list_checkpoints()
        last = found[-1] if found else None
        raise TrainingDiverged(
            f"{bad} became NaN or inf before iteration {step} (after {window_step}); the last good "
            f"checkpoint is {last if last else '(none yet)'}; try a lower learning rate or "
            "another loss"
        )


def log_window(
    window: list[torch.Tensor],
    step: int,
    window_step: int,
    seconds: float,
    started: float,
    world: World = SINGLE,
) -> dict[str, float]:
    """Window means of the logged values (over ranks too) as one metrics row (one host sync)."""
    means = mean_across(torch.stack(window).float().mean(0), world).tolist()
    row: dict[str, float] = {"step": step, **dict(zip(LOGGED, means, strict=True))}
    row["d_acc"] = 0.5 * (row["d_acc_real"] + row["d_acc_fake"])
    row["it_per_s"] = (step - window_step) / max(seconds, 1e-9)
    row["elapsed_s"] = time.monotonic() - started
    return {
        k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()
    }
