"""The run folder: its layout, and the one owner of what is read and written there.

    RUN/
      .gankit-run          marker, written first: this folder is a gankit run
      .lock                held (filelock) by the process training into the folder
      .lock-holder         who holds it: "pid N on HOST"
      config.json          the fully resolved configuration
      metrics.jsonl        one JSON row per logging window or evaluation
      fixed_noise.pt       the noise and labels of the progress grids
      images/N.png         progress grids
      checkpoints/step_NNNNNNN.pt, best.pt
      evaluation.json      the latest `gankit evaluate RUN`, with its real-data floor

Only a folder that is recognisably a run (marker or config.json) is ever replaced, and never
the current or home directory or one of their parents; a run being trained is locked against a
second writer, and the lock of a dead process does not count (the operating system releases
it at exit: `flock` on Linux and macOS, `msvcrt.locking` on Windows, through `filelock`).
Readers (sample, evaluate, report, serve) take no lock: checkpoints are written atomically, and
"latest" means the newest checkpoint that can be read.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import filelock
import torch

from gankit.checkpoint import Checkpoint, atomic_save, load_checkpoint, save_checkpoint
from gankit.errors import CheckpointError, MissingFileError, RunFolderError

logger = logging.getLogger(__name__)

MARKER = ".gankit-run"
EXPORT_MANIFEST = "gankit-export.json"  # marks an export folder (`gankit export`)
LOCK = ".lock"
LOCK_HOLDER = ".lock-holder"
_STEP_FILE = re.compile(r"step_(\d{7})\.pt$")


class RunFolder:
    """A run folder at `path` (which need not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: filelock.BaseFileLock | None = None

    # --- layout ----------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def fixed_noise_path(self) -> Path:
        return self.path / "fixed_noise.pt"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best_path(self) -> Path:
        return self.checkpoints / "best.pt"

    def grid_path(self, step: int) -> Path:
        return self.path / "images" / f"{step}.png"

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:07d}.pt"

    def is_run(self) -> bool:
        """Whether the folder is recognisably a gankit run (a run killed during start-up
        already has the marker)."""
        return (self.path / MARKER).is_file() or self.config_path.is_file()

    # --- creating, replacing, locking ------------------------------------------------------

    def create(self, overwrite: bool) -> None:
        """Makes a new run folder, taking its lock. An existing non-empty folder is replaced
        only with `overwrite`, only when it is a run, not locked, and not the current or home
        directory or one of their parents (after resolving symlinks; a link to a run is kept
        and the run it points at replaced)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"run folder {str(self.path)!r} exists and is not a folder")
        ours = (LOCK, LOCK_HOLDER)
        if self.path.is_dir() and any(p.name not in ours for p in self.path.iterdir()):
            if not overwrite:
                raise RunFolderError(
                    f"run folder {str(self.path)!r} exists and is not empty; pass --overwrite to "
                    "replace it or --resume to continue it"
                )
            self._check_replaceable()
            self.lock()
            self._clear()
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self.lock()
        (self.path / MARKER).write_text("a gankit run folder; gankit may replace it\n")
        (self.path / "images").mkdir(exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)

    def _check_replaceable(self) -> None:
        check_not_protected(self.path)
        if not self.is_run():
            raise RunFolderError(
                f"refusing to replace {str(self.path)!r}: it is not a gankit run folder (no "
                f"{MARKER} or config.json); --overwrite only replaces runs"
            )

    def _clear(self) -> None:
        """Deletes everything in the (resolved) folder but the lock file we hold."""
        clear_folder(self.path, keep=(LOCK, LOCK_HOLDER))

    def lock(self) -> None:
        """Takes the folder's exclusive lock for the life of this process (or `unlock`)."""
        if self._lock is not None:
            return
        lock = filelock.FileLock(self.path / LOCK, timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            holder_file = self.path / LOCK_HOLDER
            holder = holder_file.read_text().strip() if holder_file.is_file() else ""
            raise RunFolderError(
                f"run folder {str(self.path)!r} is being trained by {holder or 'another process'}"
                "; wait for it to finish or stop it first"
            ) from None
        (self.path / LOCK_HOLDER).write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self._lock = lock

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @contextmanager
    def locked(self) -> Iterator[RunFolder]:
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    def remove_partial_writes(self) -> list[Path]:
        """Deletes the temporary files of checkpoint writes that a killed process left (named
        `.step_*.pt.*.tmp` by `atomic_save`; only the lock holder may call this)."""
        stale = sorted(self.checkpoints.glob(".*.tmp")) if self.checkpoints.is_dir() else []
        for path in stale:
            path.unlink(missing_ok=True)
            logger.info("removed %s, left by an interrupted checkpoint write", path.name)
        return stale

    def require_resumable(self) -> None:
        if not self.config_path.is_file():
            raise RunFolderError(f"cannot resume {str(self.path)!r}: it has no config.json")

    # --- config, metrics, fixed noise ------------------------------------------------------

    def write_config(self, config: dict[str, Any]) -> None:
        tmp = self.config_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        tmp.replace(self.config_path)

    def read_config(self) -> dict[str, Any]:
        """The run's config.json as a dict (not yet validated)."""
        self.require_resumable()
        try:
            return json.loads(self.config_path.read_text())
        except json.JSONDecodeError as error:
            raise RunFolderError(f"{self.config_path} is not valid JSON: {error}") from error

    def metrics(self) -> list[dict[str, Any]]:
        """The rows of metrics.jsonl (an empty list when there are none yet)."""
        return read_metrics(self.metrics_path)

    def open_metrics(self) -> IO[str]:
        return open(self.metrics_path, "a")

    def truncate_metrics(self, step: int) -> None:
        """Drops rows logged after `step` (work lost by a crash that a resume will redo)."""
        rows = [r for r in self.metrics() if r.get("step", 0) <= step]
        tmp = self.metrics_path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(self.metrics_path)

    def save_fixed_noise(self, noise: dict[str, torch.Tensor | None]) -> None:
        atomic_save(noise, self.fixed_noise_path)

    # --- the latest `gankit evaluate RUN` ---------------------------------------------------

    @property
    def evaluation_path(self) -> Path:
        return self.path / "evaluation.json"

    def write_evaluation(self, record: dict[str, Any]) -> None:
        """The latest `gankit evaluate RUN` (figures, real-data floor, checkpoint), atomically."""
        tmp = self.evaluation_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        tmp.replace(self.evaluation_path)

    def read_evaluation(self) -> dict[str, Any] | None:
        """The record `write_evaluation` left, or None (none, or unreadable: a warning)."""
        if not self.evaluation_path.is_file():
            return None
        try:
            return json.loads(self.evaluation_path.read_text())
        except (json.JSONDecodeError, OSError) as error:
            logger.warning("ignoring %s: %s", self.evaluation_path, error)
            return None

    # --- checkpoints -----------------------------------------------------------------------

    def list_checkpoints(self) -> list[Path]:
        """The run's step_*.pt files, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(p for p in self.checkpoints.iterdir() if _STEP_FILE.search(p.name))

    def save_checkpoint(
        self, checkpoint: Checkpoint, keep: int, before_rename: Callable[[], None] | None = None
    ) -> Path:
        """Writes step_N.pt atomically, then deletes all but the newest `keep`. A full disk
        leaves the earlier checkpoints as they were and stops with a message naming them."""
        path = self.checkpoint_path(checkpoint.step)
        try:
            save_checkpoint(checkpoint, path, before_rename)
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            found = self.list_checkpoints()
            raise RunFolderError(
                f"cannot write {path.name}: {os.strerror(error.errno)}; the run stopped at "
                f"iteration {checkpoint.step}, and its last checkpoint "
                f"{found[-1].name if found else '(none yet)'} is intact (free some space, then "
                f"gankit train --resume {self.path})"
            ) from error
        for old in self.list_checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def save_best(self, checkpoint: Checkpoint) -> None:
        save_checkpoint(checkpoint, self.best_path)

    def latest_readable(
        self, map_location: str | torch.device = "cpu"
    ) -> tuple[Path, Checkpoint] | None:
        """The newest checkpoint that loads, with a warning naming each newer one that does
        not; None when the run has no step checkpoint; CheckpointError when none loads."""
        found = self.list_checkpoints()
        broken: list[str] = []
        for path in reversed(found):
            try:
                checkpoint = load_checkpoint(path, map_location=map_location)
            except CheckpointError as error:
                logger.warning("%s", error)
                broken.append(path.name)
                continue
            if broken:
                logger.warning(
                    "checkpoint %s cannot be read; using the newest readable one, %s",
                    ", ".join(broken),
                    path.name,
                )
            return path, checkpoint
        if found:
            raise CheckpointError(
                f"run {str(self.path)!r}: none of its checkpoints can be read "
                f"({', '.join(p.name for p in found)})"
            )
        return None

    def resolve(self, which: str = "latest") -> Path:
        """ "latest" (the newest readable), "best" or a path -> the checkpoint file."""
        if which == "latest":
            found = self.latest_readable()
            if found is None:
                raise MissingFileError(f"run {str(self.path)!r} has no checkpoint in checkpoints/")
            return found[0]
        if which == "best":
            if not self.best_path.is_file():
                raise MissingFileError(
                    f"run {str(self.path)!r} has no best.pt (train with --eval-every)"
                )
            return self.best_path
        path = Path(which)
        if not path.is_file():
            raise MissingFileError(f"checkpoint {which!r} does not exist")
        return path


def check_not_protected(path: Path) -> None:
    """Refuses the current or home directory or one of their parents (after resolving
    symlinks) as a folder to replace."""
    target = path.resolve()
    protected = {Path.cwd().resolve(), Path.home().resolve()}
    for place in list(protected):
        protected.update(place.parents)
    if target in protected:
        raise RunFolderError(
            f"refusing to replace {str(path)!r}: it is the current or home directory or one of "
            "their parents"
        )


def clear_folder(path: Path, keep: tuple[str, ...] = ()) -> None:
    """Deletes everything in the (resolved) folder but the entries named in `keep`."""
    for entry in path.resolve().iterdir():
        if entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


class ExportFolder:
    """An export of a run's generator (`gankit export`): the model in one format, config.json,
    the manifest `gankit-export.json`, a sample grid and model_card.md.

    The manifest is written first (marked incomplete) and last (complete), so a folder is
    recognisably an export even when an export was interrupted. `overwrite` replaces only a
    folder holding a manifest, never the current or home directory or one of their parents.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / EXPORT_MANIFEST

    def is_export(self) -> bool:
        return self.manifest_path.is_file()

    def create(self, overwrite: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"export folder {str(self.path)!r} exists and is not a folder")
        if self.path.is_dir() and any(self.path.iterdir()):
            if not overwrite:
                raise RunFolderError(
                    f"export folder {str(self.path)!r} exists and is not empty; pass "
                    "--overwrite to replace an earlier export"
                )
            check_not_protected(self.path)
            if not self.is_export():
                raise RunFolderError(
                    f"refusing to replace {str(self.path)!r}: it is not a gankit export (no "
                    f"{EXPORT_MANIFEST}); --overwrite only replaces exports"
                )
            clear_folder(self.path)
        else:
            self.path.mkdir(parents=True, exist_ok=True)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(self.manifest_path)

    def read_manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError as error:
            raise MissingFileError(f"{str(self.path)!r} is not a gankit export") from error
        except json.JSONDecodeError as error:
            raise RunFolderError(f"{self.manifest_path} is not valid JSON: {error}") from error


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl file (an empty list when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
