"""Test hooks that make a run fail on purpose at a fixed point, read once from the environment.

- GANKIT_TEST_FAIL_AT=STEP[:RANK]: that rank raises RuntimeError at the start of iteration STEP.
- GANKIT_TEST_KILL_AT=STEP: the process SIGKILLs itself at the start of iteration STEP;
  GANKIT_TEST_KILL_AT=STEP:checkpoint: while writing checkpoint STEP, after the temporary file
  is complete and before it is renamed into place (the worst moment for a crash).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from gankit.training.distributed import World


@dataclass(frozen=True)
class Faults:
    fail_at: int | None = None  # iteration at whose start this rank raises
    kill_at: int | None = None  # iteration at whose start the process kills itself
    kill_in_checkpoint: int | None = None  # checkpoint step during whose write it does

    @classmethod
    def from_env(cls, world: World) -> Faults:
        fail_at = kill_at = kill_in_checkpoint = None
        if spec := os.environ.get("GANKIT_TEST_FAIL_AT"):
            at, _, rank = spec.partition(":")
            fail_at = int(at) if world.rank == int(rank or 0) else None
        if spec := os.environ.get("GANKIT_TEST_KILL_AT"):
            at, _, phase = spec.partition(":")
            if phase == "checkpoint":
                kill_in_checkpoint = int(at)
            else:
                kill_at = int(at)
        return cls(fail_at, kill_at, kill_in_checkpoint)

    def before_iteration(self, step: int, world: World) -> None:
        """Called before iteration `step` (1-based) runs."""
        if step == self.fail_at:
            raise RuntimeError(f"GANKIT_TEST_FAIL_AT: rank {world.rank} fails at iteration {step}")
        if step == self.kill_at:
            kill_self()


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
