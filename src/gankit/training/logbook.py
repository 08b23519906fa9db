"""The run's record while it trains: metrics.jsonl rows (and TensorBoard events), built from
windows of per-iteration values that stay on the device until a log step syncs them once."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import torch

from gankit.config import RunConfig
from gankit.run import RunFolder
from gankit.training.distributed import SINGLE, World, mean_across
from gankit.training.tensorboard import Board

LOGGED = ("d_loss", "d_acc_real", "d_acc_fake", "g_loss")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or inf; the last checkpoint on disk is still good."""


@dataclass
class Logbook:
    """The open metrics.jsonl and TensorBoard writer (rank 0; None elsewhere) and the current
    window: the (4,) tensors of the iterations since `window_step`, not yet on the host."""

    folder: RunFolder
    world: World
    clock: Callable[[], float]
    started: float  # the clock's reading when training began, for `elapsed_s`
    metrics_file: IO[str] | None = None
    board: Board | None = None
    window: list[torch.Tensor] = field(default_factory=list)
    window_start: float = 0.0
    window_step: int = 0

    @classmethod
    def open(
        cls,
        config: RunConfig,
        folder: RunFolder,
        world: World,
        step: int,
        clock: Callable[[], float],
    ) -> Logbook:
        metrics_file = folder.open_metrics() if world.main else None
        board = Board(folder.path, step) if world.main and config.train.tensorboard else None
        now = clock()
        return cls(folder, world, clock, now, metrics_file, board, [], now, step)

    def add(self, values: torch.Tensor) -> None:
        self.window.append(values)

    def record(self, row: dict[str, Any]) -> None:
        """A metrics.jsonl row (rank 0), mirrored to TensorBoard when it is on."""
        if self.metrics_file is None:
            return
        self.metrics_file.write(json.dumps(row) + "\n")
        self.metrics_file.flush()
        if self.board is not None:
            self.board.row(row)

    def check_finite(self, step: int) -> None:
        check_finite(self.window, step, self.window_step, self.folder, self.world)

    def close_window(self, step: int) -> dict[str, float]:
        """Checks the window for NaNs, records its means as a row and starts a new window."""
        self.check_finite(step)
        seconds = self.clock() - self.window_start
        row = log_window(self.window, step, self.window_step, seconds, self.world)
        row["elapsed_s"] = round(self.clock() - self.started, 6)
        self.window, self.window_start, self.window_step = [], self.clock(), step
        self.record(row)
        return row

    def close(self, finished_config: RunConfig | None) -> None:
        """Closes the files; a finished run's configuration goes to TensorBoard as hparams."""
        if self.metrics_file is not None:
            self.metrics_file.close()
        if self.board is not None and finished_config is not None:
            self.board.finish(finished_config)  # the configuration with the final figures
        elif self.board is not None:
            self.board.close()


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
    world: World = SINGLE,
) -> dict[str, float]:
    """Window means of the logged values (over ranks too) as one metrics row (one host sync)."""
    means = mean_across(torch.stack(window).float().mean(0), world).tolist()
    row: dict[str, float] = {"step": step, **dict(zip(LOGGED, means, strict=True))}
    row["d_acc"] = 0.5 * (row["d_acc_real"] + row["d_acc_fake"])
    row["it_per_s"] = (step - window_step) / max(seconds, 1e-9)
    return {
        k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()
    }
