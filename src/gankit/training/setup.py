"""Before the first iteration: the config checked (and, on a resume, held to the stored one),
the device, the data, the run folder created or locked, and the state built or restored."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gankit.config import RunConfig, flatten
from gankit.data import ImageDataset, absolute_data_paths, load_dataset
from gankit.errors import ConfigError, GankitError, RunFolderError
from gankit.run import RunFolder
from gankit.training.distributed import World, broadcast_object, local_device
from gankit.training.state import TrainState, build_state, fixed_noise, restore_state
from gankit.training.tensorboard import require_tensorboard

logger = logging.getLogger(__name__)

# What a resume may change: how long and where the run goes on, what it measures on the way,
# and its budget. Anything else (the models, data, losses, seed...) would make a different run.
RESUMABLE = frozenset(
    {
        "train.iterations",
        "train.device",
        "train.threads",
        "train.tensorboard",
        "schedule.time_limit",
        "schedule.eval_every",
        "schedule.eval_samples",
        "budget.seconds",
        "budget.revise",
    }
)


@dataclass
class Started:
    """What `start` hands the loop."""

    config: RunConfig
    state: TrainState
    dataset: ImageDataset
    device: torch.device
    planning: bool  # a budget is to be planned before the first iteration


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r} but CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"train.device = {name!r}; choose 'cpu', 'cuda' or 'cuda:N'")
    return device


def held_to_stored(config: RunConfig, stored: RunConfig) -> RunConfig:
    """The config a resume runs with: `config`, whose keys outside `RESUMABLE` must equal the
    stored run's (a missing seed takes the stored one; the recorded plan, `plan.*`, is the
    caller's: keep the stored plan to continue it, clear it to plan again).

    Raises:
        ConfigError: naming each key that differs and may not.
    """
    if config.train.seed is None:
        config = config.with_overrides({"train.seed": stored.train.seed})
    given, kept = flatten(config.to_dict()), flatten(stored.to_dict())
    changed = sorted(
        key
        for key in given
        if given[key] != kept.get(key) and key not in RESUMABLE and not key.startswith("plan.")
    )
    if changed:
        detail = ", ".join(f"{key} ({kept.get(key)!r} -> {given[key]!r})" for key in changed)
        raise ConfigError(
            f"a resume keeps the run's configuration; only {sorted(RESUMABLE)} may change, "
            f"not {detail}"
        )
    return config


def resumed_config(config: RunConfig, folder: RunFolder, world: World) -> RunConfig:
    """Rank 0 holds the config to the folder's stored one; every rank gets the outcome."""
    outcome: Any = None
    if world.main:
        try:
            stored = RunConfig.from_dict(folder.read_config())
            outcome = held_to_stored(absolute_data_paths(config, Path.cwd()), stored).to_dict()
        except GankitError as error:
            outcome = error
    outcome = broadcast_object(outcome if world.main else None, world)
    if isinstance(outcome, GankitError):
        raise outcome
    return RunConfig.from_dict(outcome)


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


def start(
    config: RunConfig, folder: RunFolder, resume: bool, overwrite: bool, world: World
) -> Started:
    """Prepares the folder (rank 0), seed, data and state; restores the newest readable
    checkpoint (a resume with none restarts cleanly, dropping the dead run's metric rows)."""
    if resume:
        config = resumed_config(config, folder, world)
    config = check_config(config, world)  # a bad config, device or dataset creates no folder
    device = resolve_device(local_device(config.train.device, world))
    data = config.data
    dataset = load_dataset(data.dataset, data.split, data.data_dir, size=data.size, seed=data.seed)
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
    planning = config.budget.seconds is not None and not config.planned
    return Started(config, state, dataset, device, planning)
