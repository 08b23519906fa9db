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
from gankit.training.setup import Started, start
from gankit.training.state import TrainState, rng_states, to_checkpoint
from gankit.training.step import StepOptions, train_iteration

logger = logging.getLogger(__name__)

ProgressHook = Callable[[int, dict[str, float]], None]

__all__ = ["TrainingDiverged", "train"]


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
    housekeeping: float = 0.0  # seconds spent on grids, evaluations and checkpoints


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
    # uint8 pixels on the device; each batch is converted to [-1, 1] as it is drawn
    images = begun.dataset.pixels.to(device).contiguous(memory_format=memory_format(config.model))
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
    finished, first, began = False, state.step, clock()
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
    # the steps' time: what the loop took less its grids, evaluations and checkpoints (the logs
    # stay in: their host sync is where a GPU's queued steps are waited for)
    state.trained = (state.step - first, max(clock() - began - loop.housekeeping, 0.0))
    return loop.config


def after_iteration(loop: Loop, state: TrainState) -> bool:
    """Logs, grids, evaluations and checkpoints due at `state.step`; True to stop early."""
    step, world, folder, logbook = state.step, loop.world, loop.folder, loop.logbook
    logs = step % loop.config.schedule.log_every == 0
    if logs and (revised := loop.stop.revised(loop.config, step)) is not None:
        loop.config = revised
        if world.main:
            folder.write_config(revised.to_dict())
    config = loop.config
    out_of_time = loop.stop.out_of_time(logs)
    last = step == config.train.iterations or out_of_time
    if logs or last:
        row = logbook.close_window(step)
        state.metrics.update(row)
        if world.main and loop.progress is not None:
            loop.progress(step, row)
    sched = config.schedule
    due = last or any(
        every is not None and step % every == 0
        for every in (sched.sample_every, sched.eval_every, sched.checkpoint_every)
    )
    if due:  # timed apart from the steps (the clock is read only then)
        began = logbook.clock()
        try:
            housekeeping(loop, state, last, out_of_time)
        finally:
            loop.housekeeping += logbook.clock() - began
    if out_of_time:
        logger.info(
            "time limit reached at iteration %d (of %d planned)", step, config.train.iterations
        )
    return out_of_time


def housekeeping(loop: Loop, state: TrainState, last: bool, out_of_time: bool) -> None:
    """The grids, evaluations and checkpoints due at `state.step`."""
    step, world, folder, logbook = state.step, loop.world, loop.folder, loop.logbook
    config, sched = loop.config, loop.config.schedule
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
