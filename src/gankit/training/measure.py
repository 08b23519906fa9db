"""A budget's measurement: the run timed on itself, then put back exactly as it was.

Before planning, `measure` times the run's own training iterations (after an untimed warm-up),
a fixed-noise grid, a checkpoint, the plots drawn at the end and the final evaluation, then
restores the state through the checkpoint round trip that resuming uses, so that the
measurement changes no weight, optimizer moment or random stream. `process_started` says when
the budget began: the process's own start (Python and torch start-up count against it), or its
launcher's.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gankit.config import RunConfig
from gankit.plots import plot_losses, plot_metrics
from gankit.sampling import fixed_noise_grid
from gankit.training.distributed import World, broadcast_object
from gankit.training.state import TrainState, restore_state, rng_states, to_checkpoint

Clock = Callable[[], float]  # seconds, monotonic: time.monotonic, or a test's

WARMUP_ITERATIONS = 10  # not timed: first calls allocate, pick kernels and fill caches
# Timed iterations run at least 2.5% of the budget, within 1..10 s, and 5..5000 iterations. A
# fixed second was too short: on a 2-core EPYC, cdcgan's first second after warm-up ran at 13.5
# and 20.2 it/s in two runs of the same command, which then sustained about 21 it/s.
MEASURE_FRACTION, MEASURE_SECONDS = 0.025, (1.0, 10.0)
MEASURE_ITERATIONS = (5, 5000)


STARTED_ENV = "GANKIT_LAUNCHED_AT"  # wall-clock start of `gankit train --nproc`'s launcher


def process_started() -> float:
    """The `time.monotonic()` reading at which this process started, so that a budget counts
    Python's and torch's start-up too (Linux: /proc/self/stat; elsewhere: now). Workers that
    `gankit train --nproc` launched a moment before count from their launcher's start."""
    own = _own_start()
    launched = os.environ.get(STARTED_ENV)
    if launched is not None:
        try:
            launcher = time.monotonic() - (time.time() - float(launched))
        except ValueError:
            return own
        if 0 <= own - launcher <= 600:  # a stale value, left in a shell say, is ignored
            return launcher
    return own


def _own_start() -> float:
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, ticks
        return time.monotonic() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic()


def timed(fn: Callable[[], object], device: torch.device, clock: Clock = time.monotonic) -> float:
    """Seconds one call of `fn` takes, the device's queued work included."""
    synchronize(device)
    start = clock()
    fn()
    synchronize(device)
    return clock() - start


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    state: TrainState,
    config: RunConfig,
    iterate: Callable[[], object],
    save: Callable[[Path], None],
    evaluate: Callable[[], object] | None,
    device: torch.device,
    world: World,
    clock: Clock = time.monotonic,
) -> dict[str, float]:
    """Times the run's own iterations, a grid, a checkpoint and the evaluation, then restores
    the state exactly. Every rank iterates (DDP's collectives need them all); rank 0's
    figures are returned on every rank."""
    # deep-copied: a state dict holds the live tensors, which the timed iterations update
    snapshot = copy.deepcopy(to_checkpoint(state, config, device, local_rng(state, device, world)))
    for _ in range(WARMUP_ITERATIONS):
        iterate()
    synchronize(device)
    seconds = measure_seconds(config.budget.seconds)
    count, start = 0, clock()
    while True:
        iterate()
        count += 1
        if count % 5 == 0:
            synchronize(device)
        if count >= MEASURE_ITERATIONS[1]:
            break
        if count < MEASURE_ITERATIONS[0] or (world.distributed and count % 5):
            continue
        # rank 0's clock decides for every rank (every fifth iteration under DDP): a rank that
        # stopped on its own clock one iteration before another would leave that one waiting
        # in DDP's all-reduce while it broadcasts, and gloo would pair mismatched collectives
        if not broadcast_object(clock() - start < seconds, world):
            break
    synchronize(device)
    figures = {"it_per_s": count / max(clock() - start, 1e-9)}
    if world.main:
        with tempfile.TemporaryDirectory() as scratch:
            grid = Path(scratch) / "grid.png"
            sampler = state.sampler
            figures["grid_s"] = timed(
                lambda: fixed_noise_grid(sampler, state.fixed_z, state.fixed_labels, grid),
                device,
                clock,
            )
            figures["checkpoint_s"] = timed(lambda: save(Path(scratch) / "step.pt"), device, clock)
            figures["plots_s"] = timed(lambda: draw_plots(Path(scratch), evaluate), device, clock)
        figures["evaluation_s"] = timed(evaluate, device, clock) if evaluate is not None else 0.0
    restore_state(state, snapshot, device, world)
    return broadcast_object(figures if world.main else None, world)


def draw_plots(folder: Path, evaluated: object) -> None:
    """The plots a run draws after its last checkpoint (`train`'s end), from rows shaped like
    its own, so that the plan sets their time aside; the first call also pays for importing
    matplotlib, which the run's own plots then find done."""
    train_row = {"d_loss": 1.0, "g_loss": 1.0, "d_acc_real": 0.5, "d_acc_fake": 0.5}
    rows = [{"step": step, **train_row} for step in (1, 2)]
    if evaluated is not None:
        eval_row = {
            "kind": "eval",
            "fid": 1.0,
            "extractor": "domain",
            "cond_acc": 0.5,
            "coverage": 0.5,
            "recall": 0.5,
        }
        rows += [{"step": step, **eval_row} for step in (1, 2)]
    plot_metrics(rows, folder / "metrics.png")
    plot_losses(rows, folder / "loss.png")


def measure_seconds(budget_seconds: float) -> float:
    """How long the timed iterations run at least, for a budget of `budget_seconds`."""
    low, high = MEASURE_SECONDS
    return min(max(low, MEASURE_FRACTION * budget_seconds), high)


def local_rng(state: TrainState, device: torch.device, world: World) -> dict:
    """This rank's RNG states in the form `restore_state` reads back on this rank."""
    mine = rng_states(state, device)
    if not world.distributed:
        return mine
    return {"ranks": [mine if rank == world.rank else None for rank in range(world.size)]}
