"""TensorBoard events of a run (`train.tensorboard`), written by rank 0 to `RUN/tb/` through
`torch.utils.tensorboard.SummaryWriter`: the rows of `metrics.jsonl` as scalars (training rows
under `train/`, evaluations under `eval/`, a per-class list as one scalar per class), the
fixed-noise grids, and at the end the configuration as hparams with the final figures.

`metrics.jsonl` stays the source of truth. Events are written where its rows are, from values
already on the host, so no synchronisation is added; a resume purges the events after the
resumed step, as `metrics.jsonl` is truncated there.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gankit.config import RunConfig
from gankit.errors import ConfigError

TB_DIR = "tb"  # inside the run folder
HPARAMS_RUN = "hparams"  # sub-run of TB_DIR holding the configuration and final figures


def require_tensorboard() -> None:
    """A ConfigError (exit 2) naming the extra when the tensorboard package is missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            "train.tensorboard needs the tensorboard package: pip install 'gankit[tensorboard]'"
        ) from error


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl row's numbers as TensorBoard tags (`train/d_loss`, `eval/fid`,
    `eval/cond_acc_per_class/3`); nulls, strings and non-finite values are left out."""
    kind = "eval" if row.get("kind") == "eval" else "train"
    tags = {}
    for key, value in row.items():
        if key in ("step", "kind") or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and math.isfinite(value):
            tags[f"{kind}/{key}"] = float(value)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, int | float) and not isinstance(item, bool):
                    if math.isfinite(item):
                        tags[f"{kind}/{key}/{index}"] = float(item)
    return tags


def hparams(config: RunConfig) -> dict[str, float | str | bool]:
    """The configuration flattened to `section.key` values TensorBoard's hparams accept
    (numbers, strings and booleans; lists as text; None left out)."""
    flat: dict[str, float | str | bool] = {}
    for section, values in config.to_dict().items():
        if not isinstance(values, dict):
            if values is not None:
                flat[section] = values
            continue
        for key, value in values.items():
            if value is None:
                continue
            flat[f"{section}.{key}"] = str(value) if isinstance(value, list) else value
    return flat


class Board:
    """The run's event writer (rank 0 only)."""

    def __init__(self, run: Path, resumed_step: int) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        # events at steps after the resumed checkpoint belong to the dead run: purged, as
        # metrics.jsonl keeps rows up to resumed_step
        purge = resumed_step + 1 if resumed_step > 0 else None
        self.path = run / TB_DIR
        self.writer = SummaryWriter(log_dir=str(self.path), purge_step=purge)
        self.last_eval: dict[str, float] = {}
        self.last_train: dict[str, float] = {}

    def row(self, row: dict[str, Any]) -> None:
        tags = scalars(row)
        for tag, value in tags.items():
            self.writer.add_scalar(tag, value, row["step"])
        if row.get("kind") == "eval":
            self.last_eval = tags
        else:
            self.last_train = tags
        self.writer.flush()

    def grid(self, png: Path, step: int) -> None:
        image = np.asarray(Image.open(png).convert("RGB"))
        self.writer.add_image("fixed_noise", image, step, dataformats="HWC")

    def finish(self, config: RunConfig) -> None:
        """The configuration as hparams, with the final evaluation's figures (or, without
        one, the last training row's)."""
        final = self.last_eval or self.last_train
        metrics = {
            f"final/{tag.split('/', 1)[1]}": value
            for tag, value in final.items()
            if tag.count("/") == 1
        }
        self.writer.add_hparams(hparams(config), metrics, run_name=HPARAMS_RUN)
        self.close()

    def close(self) -> None:
        self.writer.close()
