"""`TrainHooks`: the points of a run at which a caller of `train(..., hooks=...)` may act.

The loop calls them and nothing else reads them: the test suite subclasses them to make a run
fail or die at a chosen moment (`tests/launcher.py`) or to drive a clock, and a tool may log or
watch from them. Each does nothing by default. They must not touch the training state: a run
with hooks trains exactly as one without.
"""

from __future__ import annotations

from gankit.training.distributed import World


class TrainHooks:
    """No-op hooks; subclass and override the ones you need."""

    def before_iteration(self, step: int, world: World) -> None:
        """Called on every rank before iteration `step` (1-based) runs."""

    def before_checkpoint_rename(self, step: int) -> None:
        """Called on rank 0 while checkpoint `step` is being written: its temporary file is
        complete and not yet renamed into place (the worst moment for a crash)."""
