"""A test-only `gankit` that can fail or die on purpose, for tests that need a child process.

    python tests/launcher.py [--fail-at STEP[:RANK]] [--kill-at STEP[:checkpoint]]
                             [--ticks SECONDS] ARGS...

runs `gankit ARGS...` (the shipped CLI, unchanged) with `TrainHooks` that make rank RANK raise
RuntimeError as iteration STEP starts, or the process SIGKILL itself as iteration STEP starts
(`:checkpoint`: while writing checkpoint STEP, after its temporary file is complete and before
it is renamed). `--ticks` replaces the run's clock by `Ticks`: every reading advances SECONDS,
so that a budget's plan and stops do not depend on this machine's speed or load.
`gankit train --nproc N` under this launcher starts torchrun on this script, so
every rank gets the same hooks. Nothing in the package reads these options.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the tests' own modules sit beside it
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from gankit.training.distributed import World
from gankit.training.hooks import TrainHooks


class Faults(TrainHooks):
    """A failure at an iteration's start (one rank), or a SIGKILL there or in a checkpoint."""

    def __init__(self, fail_at: str | None = None, kill_at: str | None = None) -> None:
        self.fail_at = self.fail_rank = self.kill_at = self.kill_in_checkpoint = None
        if fail_at:
            at, _, rank = fail_at.partition(":")
            self.fail_at, self.fail_rank = int(at), int(rank or 0)
        if kill_at:
            at, _, phase = kill_at.partition(":")
            if phase == "checkpoint":
                self.kill_in_checkpoint = int(at)
            else:
                self.kill_at = int(at)

    def before_iteration(self, step: int, world: World) -> None:
        if step == self.fail_at and world.rank == self.fail_rank:
            raise RuntimeError(f"injected fault: rank {world.rank} fails at iteration {step}")
        if step == self.kill_at:
            kill_self()

    def before_checkpoint_rename(self, step: int) -> None:
        if step == self.kill_in_checkpoint:
            kill_self()


class Ticks:
    """A clock that advances `tick` seconds at every reading: time becomes a count of the run's
    own readings, the same on any machine under any load."""

    def __init__(self, tick: float = 0.01) -> None:
        self.tick, self.count = tick, 0

    def __call__(self) -> float:
        self.count += 1
        return self.count * self.tick


class Machine(TrainHooks):
    """A simulated machine that trains `speed` iterations a second: its clock reads the
    iterations this process has started, divided by the speed (readings do not advance it)."""

    def __init__(self, speed: float) -> None:
        self.speed, self.count = speed, 0

    def clock(self) -> float:
        return self.count / self.speed

    def before_iteration(self, step: int, world: World) -> None:
        self.count += 1


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tests/launcher.py")
    parser.add_argument("--fail-at")
    parser.add_argument("--kill-at")
    parser.add_argument("--ticks", type=float)
    options, rest = parser.parse_known_args(argv)
    from gankit.cli import main as gankit_main
    from gankit.cli import train as cli_train
    from gankit.training import loop, measure

    hooks = Faults(options.fail_at, options.kill_at)
    extra = {}
    if options.ticks:
        extra["clock"] = Ticks(options.ticks)
        measure.process_started = lambda: 0.0  # the budget counts from the clock's zero
    loop.train = functools.partial(loop.train, hooks=hooks, **extra)  # what `gankit train` calls
    # `--nproc`: torchrun starts this script again on every rank, with the same fault options
    cli_train.TORCHRUN_ENTRY = [__file__, *argv[: len(argv) - len(rest)]]
    return gankit_main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
