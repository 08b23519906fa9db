"""`gankit train --budget SECONDS`: plan the iteration count that fits a wall-clock budget.

Before the first iteration, the run measures on itself, then puts itself back exactly as it
was (through the checkpoint round trip that resuming uses, so the measurement changes no
weight, optimizer moment or random stream): the speed of its training iterations, the cost of
a fixed-noise grid, of a checkpoint and of the final evaluation. Rank 0's figures are
broadcast, and the plan

    iterations = (budget - spent - evaluation - grid - checkpoint)
                 / (1 / speed + grid / sample_every + checkpoint / checkpoint_every
                    + evaluation / eval_every)

is recorded in `config.json` (`plan.*`, `train.iterations`). From then on the run is an
ordinary run of that many iterations, and its config reproduces it without planning again.

A few seconds of measurement misjudge a shared machine both ways (on 2 EPYC cores, cdcgan
measured 15-17 it/s and then sustained about 20), so with `budget.revise` (the default) the
process that planned revises the total at every log step from the speed it has sustained so
far, as long as the learning rate is still constant under both the old and the new total: the
iterations done so far then ran exactly as the new total would have run them (the LR factor is
1 for both, the EMA warm-up and the data draws do not depend on the total), so the recorded
config still replays the run. Once the decay has begun the total is fixed.

`StopPolicy` is the one place that decides when the iterations stop: the planned total, its
revisions, `--time-limit` and the budget's own stop. Every clock reading of a run goes through
its `clock` (`time.monotonic` unless a caller injects another), and under DDP rank 0's
readings decide for every rank.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from gankit.checkpoint import save_checkpoint
from gankit.config import BudgetPlan, RunConfig
from gankit.errors import ConfigError
from gankit.run import RunFolder
from gankit.sampling import sample_balanced
from gankit.training.distributed import World, broadcast_object
from gankit.training.measure import Clock, measure
from gankit.training.optim import constant_until
from gankit.training.state import TrainState, to_checkpoint

logger = logging.getLogger(__name__)

# The plan spends 85% of what is left. On shared 2-core VMs the measured speed missed the speed
# sustained over the run both ways: on one, `--budget 60` sustained 77% (cdcgan) and 70%
# (seed-cgan) of the first second's; on another, cdcgan measured 15-17 it/s over 3.7 s and
# then ran at about 20, so its `--budget 148` runs used 80-89% of the budget. What the margin
# misses, the budget's own stop catches (`time_limit`).
SAFETY = 0.85


def plan_iterations(
    seconds_left: float,
    it_per_s: float,
    grid_s: float,
    checkpoint_s: float,
    evaluation_s: float,
    sample_every: int,
    checkpoint_every: int,
    eval_every: int | None = None,
) -> int:
    """Iterations that fit `seconds_left`, with a grid every `sample_every`, a checkpoint
    every `checkpoint_every` and an evaluation every `eval_every` (None: none) iterations, and
    one of each at the end.

    Raises:
        ConfigError: not even one iteration fits.
    """
    per_iteration = 1 / it_per_s + grid_s / sample_every + checkpoint_s / checkpoint_every
    if eval_every is not None:
        per_iteration += evaluation_s / eval_every
    left = SAFETY * seconds_left - evaluation_s - grid_s - checkpoint_s
    iterations = math.floor(left / per_iteration)
    if iterations < 1:
        needed = (per_iteration + evaluation_s + grid_s + checkpoint_s) / SAFETY
        raise ConfigError(
            f"budget.seconds: {seconds_left:.1f} s are left after start-up, and one iteration "
            f"with its grid, checkpoint and evaluation needs about {needed:.1f} s here"
        )
    return iterations


def plan(
    config: RunConfig, figures: dict[str, float], spent_s: float, start_step: int
) -> RunConfig:
    """The config with the plan recorded: budget figures and train.iterations."""
    sched, budget = config.schedule, config.budget
    left = budget.seconds - spent_s - figures.get("plots_s", 0.0)  # drawn after the last step
    iterations = plan_iterations(
        left,
        figures["it_per_s"],
        figures["grid_s"],
        figures["checkpoint_s"],
        figures["evaluation_s"],
        sched.sample_every,
        sched.checkpoint_every,
        sched.eval_every,
    )
    planned = config.with_overrides(
        {
            "train.iterations": start_step + iterations,
            "plan.planned_iterations": start_step + iterations,
            "plan.revised_it_per_s": None,  # a re-plan on resume starts unrevised
            "plan.revised_at": None,
            "plan.startup_s": round(spent_s, 3),
            **{f"plan.{key}": round(value, 6) for key, value in figures.items()},
        }
    )
    logger.info(
        "budget of %.0f s: %d iterations at %.1f it/s (%.1f s spent before training; grid "
        "%.3f s, checkpoint %.3f s, final evaluation %.1f s, plots %.1f s)",
        budget.seconds,
        iterations,
        figures["it_per_s"],
        spent_s,
        figures["grid_s"],
        figures["checkpoint_s"],
        figures["evaluation_s"],
        figures.get("plots_s", 0.0),
    )
    return planned


def plan_run(
    config: RunConfig,
    state: TrainState,
    iterate: Callable[[], object],
    evaluator: Callable[..., object] | None,
    device: torch.device,
    folder: RunFolder,
    world: World,
    started: float,
    clock: Clock = time.monotonic,
) -> RunConfig:
    """Measures the run on itself (`iterate` runs one training iteration; the state is
    restored after), plans the iterations that fit `budget.seconds` from rank 0's figures and
    clock, and records the plan in config.json. Every rank gets the same plan."""

    def save_to(path: Path) -> None:
        save_checkpoint(to_checkpoint(state, config, device), path)

    def evaluate() -> None:
        images, labels = sample_balanced(state.sampler, config.schedule.eval_samples, 0, device)
        evaluator(images, labels)

    figures = measure(
        state,
        config,
        iterate,
        save_to,
        evaluate if evaluator is not None else None,
        device,
        world,
        clock,
    )
    spent = broadcast_object(clock() - started, world)  # rank 0's clock for all
    config = plan(config, figures, spent, state.step)
    if world.main:
        folder.write_config(config.to_dict())
    return config


# A revision aims at 95% of what is left: it rests on the speed sustained over the run so far
# (hundreds of iterations with their grids and checkpoints, not a few seconds), and what it
# misjudges, the budget's own stop catches.
REVISE_SAFETY = 0.95


def lr_constant_until(config: RunConfig, iterations: int) -> int | None:
    """The last step whose update still uses the base learning rate in a run of `iterations`
    of this config (None: every update does); the schedule's own rule (`lr_factor`)."""
    return constant_until(config.optim.lr_decay, iterations, config.optim.lr_decay_start)


def revise(
    config: RunConfig, step: int, start_step: int, trained_s: float, spent_s: float
) -> RunConfig | None:
    """The config with `train.iterations` revised from the speed sustained since training
    began (`step - start_step` iterations in `trained_s` seconds, grids and checkpoints
    included), for the `spent_s` seconds of the budget used so far; None to keep the plan:
    the learning rate has begun to decay (or would have under the new total), or the total
    would not change.
    """
    plan, old = config.plan, config.train.iterations
    done = step - start_step
    if not config.planned or done <= 0 or trained_s <= 0:
        return None
    constant = lr_constant_until(config, old)
    if constant is not None and step > constant:
        return None
    rate = done / trained_s
    left = config.budget.seconds - spent_s - reserved_s(plan)
    more = math.floor(REVISE_SAFETY * left * rate)
    if more < 1:  # nothing more fits: the plan stands, and the budget's stop ends the run
        return None
    new = step + more
    constant = lr_constant_until(config, new)
    if new == old or (constant is not None and step > constant):
        return None
    return config.with_overrides(
        {"train.iterations": new, "plan.revised_it_per_s": round(rate, 6), "plan.revised_at": step}
    )


def stopped_at(config: RunConfig, step: int) -> RunConfig | None:
    """A planned run that the budget's stop ended at `step`, short of `train.iterations`: the
    config that replays it (`train.iterations = step`) when none of its updates depended on
    the total (its learning rate would be constant up to `step` under that total too); None
    when it would not replay (the decay had begun: config.json then keeps the total it
    decayed towards, and the run's last checkpoint says where it stopped)."""
    if not config.planned or step >= config.train.iterations:
        return None
    constant = lr_constant_until(config, step)  # updates 0..step-1 ran at the base rate?
    if constant is not None and constant < step - 1:
        return None
    return config.with_overrides({"train.iterations": step})


def reserved_s(plan: BudgetPlan) -> float:
    """What the end of a run takes after its last iteration: the final evaluation, grid,
    checkpoint and plots."""
    return sum(
        value or 0.0 for value in (plan.evaluation_s, plan.grid_s, plan.checkpoint_s, plan.plots_s)
    )


def time_limit(config: RunConfig, spent_s: float) -> float | None:
    """Seconds the iterations may take from now: `schedule.time_limit`, and with a budget also
    what is left of it once the final grid, checkpoint and evaluation are set aside. The plan
    aims below that; this stop only catches a machine that slowed down after planning."""
    limits = [config.schedule.time_limit]
    if config.planned:
        limits.append(max(config.budget.seconds - spent_s - reserved_s(config.plan), 1e-3))
    return min((limit for limit in limits if limit is not None), default=None)


@dataclass
class StopPolicy:
    """When a run's iterations stop: at `train.iterations` (which a budget's revisions may
    move, while the learning rate is constant), at `--time-limit`, or at the budget's own stop.

    Attributes:
        world: the processes; rank 0's clock decides for all of them.
        clock: seconds, monotonic.
        started: the clock's reading when this process's iterations began.
        process_started: the clock's reading when the budget began (the process's start).
        start_step: the iteration training began from in this process.
        time_limit: seconds the iterations may take from `started`, or None.
        revising: this process planned the budget and may still revise its total.
    """

    world: World
    clock: Clock
    started: float
    process_started: float
    start_step: int
    time_limit: float | None
    revising: bool

    @classmethod
    def for_run(
        cls,
        config: RunConfig,
        world: World,
        start_step: int,
        process_started: float,
        planned_here: bool,
        clock: Clock = time.monotonic,
    ) -> StopPolicy:
        started = clock()
        limit = time_limit(config, started - process_started)
        revising = planned_here and config.budget.revise
        return cls(world, clock, started, process_started, start_step, limit, revising)

    def revised(self, config: RunConfig, step: int) -> RunConfig | None:
        """At a log step: the config with its total revised from the speed sustained so far
        (rank 0's figures, on every rank), or None to keep it. Once the learning rate has begun
        to decay the total is fixed, and this stops for good (the same decision on every
        rank)."""
        if not self.revising:
            return None
        constant = lr_constant_until(config, config.train.iterations)
        if constant is not None and step > constant:
            self.revising = False
            return None
        found = None
        if self.world.main:
            now = self.clock()
            found = revise(
                config, step, self.start_step, now - self.started, now - self.process_started
            )
        if self.world.distributed:
            found = broadcast_object(found, self.world)
        return found

    def out_of_time(self, logs: bool) -> bool:
        """Past the wall-clock limit? Under DDP rank 0 decides, at log steps, for every rank."""
        if self.time_limit is None:
            return False
        late = self.clock() - self.started > self.time_limit
        if not self.world.distributed:
            return late
        return bool(broadcast_object(late, self.world)) if logs else False
