"""The training loop: plain `if step % every == 0` blocks around the D and G steps.

Only rank 0 writes the run folder, and nothing lives in globals, so the same loop can later run
under torchrun. The loop synchronises with the host only when it logs or checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gankit.checkpoint import (
    atomic_save,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from gankit.config import RunConfig
from gankit.data import ImageDataset, load_dataset
from gankit.plots import plot_losses, plot_metrics, read_metrics
from gankit.sampling import fixed_noise_grid
from gankit.training.evaluation import evaluate_during_training, training_evaluator
from gankit.training.state import (
    TrainState,
    build_state,
    fixed_noise,
    restore_state,
    to_checkpoint,
)
from gankit.training.step import StepOptions, discriminator_step, generator_step, make_fakes

logger = logging.getLogger(__name__)

ProgressHook = Callable[[int, dict[str, float]], None]
LOGGED = ("d_loss", "d_acc_real", "d_acc_fake", "g_loss")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or inf; the last checkpoint on disk is still good."""


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (exists, or has nothing to resume)."""


def prepare_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (out / "config.json").is_file():
            raise RunFolderError(f"cannot resume {str(out)!r}: it has no config.json")
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RunFolderError(
                f"run folder {str(out)!r} exists and is not empty; pass --overwrite to replace "
                "it or --resume to continue it"
            )
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device = {name!r} but CUDA is not available on this machine")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"train.device = {name!r}; choose 'cpu', 'cuda' or 'cuda:N'")
    return device


def truncate_metrics(path: Path, step: int) -> None:
    """Drops rows logged after `step` (work lost by a crash that a resume will redo)."""
    rows = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def start(
    config: RunConfig, out: Path, resume: bool, overwrite: bool
) -> tuple[RunConfig, TrainState, ImageDataset, torch.device]:
    """Prepares the folder, seed, data and state; restores the latest checkpoint on resume."""
    prepare_run_folder(out, resume, overwrite)
    if config.train.seed is None:
        config = config.with_overrides({"train.seed": secrets.randbelow(2**31)})
        logger.info("no seed given; drew seed %d", config.train.seed)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    device = resolve_device(config.train.device)
    data = config.data
    dataset = load_dataset(data.dataset, data.split, data.data_dir)
    state = build_state(config, dataset, device)
    found = latest_checkpoint(out) if resume else None
    if found is not None:
        restore_state(state, load_checkpoint(found, map_location=device), device)
        truncate_metrics(out / "metrics.jsonl", state.step)
        logger.info("resuming %s from iteration %d", out, state.step)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    if not (out / "fixed_noise.pt").exists() or not resume:
        atomic_save(fixed_noise(state), out / "fixed_noise.pt")
    return config, state, dataset, device


def train(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressHook | None = None,
) -> TrainState:
    """Trains a GAN or CGAN as `config` says and writes the run folder `out`.

    Args:
        config: the run configuration (the seed is drawn and recorded when None).
        out: the run folder.
        resume: continue from the folder's latest checkpoint (a fresh start if it has none).
        overwrite: replace an existing non-empty folder.
        progress: called as progress(step, row) after each logged window.

    Raises:
        TrainingDiverged: a loss became NaN or inf; the last checkpoint is kept.
        RunFolderError, ValueError: bad folder or configuration.
    """
    out = Path(out)
    config, state, dataset, device = start(config, out, resume, overwrite)
    sched, options = config.schedule, StepOptions.from_config(config)
    images, labels = dataset.images.to(device), dataset.labels.to(device)
    evaluator = training_evaluator(config)
    metrics_file = open(out / "metrics.jsonl", "a")
    window: list[torch.Tensor] = []
    started, window_start, window_step = time.monotonic(), time.monotonic(), state.step
    try:
        while state.step < config.train.iterations:
            window.append(train_iteration(state, images, labels, config, options))
            state.step += 1
            step = state.step
            elapsed = time.monotonic() - started
            out_of_time = sched.time_limit is not None and elapsed > sched.time_limit
            last = step == config.train.iterations or out_of_time
            if step % sched.log_every == 0 or last:
                check_finite(window, step, window_step, out)
                seconds = time.monotonic() - window_start
                row = log_window(window, step, window_step, seconds, started)
                window, window_start, window_step = [], time.monotonic(), step
                state.metrics.update(row)
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
                if progress is not None:
                    progress(step, row)
            if step % sched.sample_every == 0 or last:
                grid = out / "images" / f"{step}.png"
                fixed_noise_grid(state.sampler, state.fixed_z, state.fixed_labels, grid)
            evaluate_now = sched.eval_every is not None and step % sched.eval_every == 0
            if evaluator is not None and (evaluate_now or last):
                check_finite(window, step, window_step, out)
                row = evaluate_during_training(state, evaluator, config, out, device)
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
            if step % sched.checkpoint_every == 0 or last:
                check_finite(window, step, window_step, out)
                save_checkpoint(to_checkpoint(state, config, device), checkpoint_path(out, step))
                prune_checkpoints(out, sched.keep_checkpoints)
            if out_of_time:
                logger.info("time limit of %.0f s reached at iteration %d", sched.time_limit, step)
                break
    finally:
        metrics_file.close()
    plot_metrics(read_metrics(out / "metrics.jsonl"), out / "metrics.png")
    plot_losses(
        read_metrics(out / "metrics.jsonl"),
        out / "loss.png",
        title=f"{config.preset or 'run'}: losses",
    )
    return state


def train_iteration(
    state: TrainState,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: RunConfig,
    options: StepOptions,
) -> torch.Tensor:
    """`d_steps` D updates and one G update on batches drawn with replacement (no host sync).

    Returns:
        (4,) tensor on the device: d_loss, d_acc_real, d_acc_fake (last D step), g_loss.
    """
    quirks, rng, classes = config.quirks, state.rng, state.num_classes
    batch, latent, device = config.train.batch_size, config.model.latent_dim, images.device
    for _ in range(config.train.d_steps):
        idx = torch.randint(len(images), (batch,), device=device, generator=rng)
        real, real_labels = images[idx], labels[idx] if classes else None
        z = torch.randn(batch, latent, device=device, generator=rng)
        fake_labels = real_labels
        if classes and not quirks.real_labels_for_fakes:
            fake_labels = torch.randint(classes, (batch,), device=device, generator=rng)
        fakes = make_fakes(state.generator, z, fake_labels, quirks.g_eval_for_fakes)
        d_out = discriminator_step(
            state.discriminator, state.opt_d, real, real_labels, fakes, fake_labels, options, rng
        )
    if not quirks.reuse_noise:
        z = torch.randn(batch, latent, device=device, generator=rng)
    g_labels = torch.randint(classes, (batch,), device=device, generator=rng) if classes else None
    g_out = generator_step(
        state.generator, state.discriminator, state.opt_g, z, g_labels, options, rng
    )
    if state.generator_ema is not None:
        update_ema(
            state.generator_ema, state.generator, ema_decay(config.train.ema_decay, state.step)
        )
    return torch.stack([d_out["d_loss"], d_out["d_acc_real"], d_out["d_acc_fake"], g_out["g_loss"]])


def ema_decay(decay: float, step: int) -> float:
    """The decay with a warm-up, min(decay, (1 + step) / (10 + step)), so that the average
    forgets the random initial weights within the first hundreds of iterations."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for parameters; buffers (BatchNorm statistics)
    are copied, as in Karras et al.'s implementations."""
    ema_params, params = list(ema.parameters()), list(model.parameters())
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)


def check_finite(window: list[torch.Tensor], step: int, window_step: int, out: Path) -> None:
    """Raises TrainingDiverged when a value not yet checked is NaN or inf (one host sync)."""
    if not window:
        return
    finite = torch.isfinite(torch.stack(window)).all(0).tolist()
    if not all(finite):
        bad = ", ".join(k for k, ok in zip(LOGGED, finite, strict=True) if not ok)
        last = latest_checkpoint(out)
        raise TrainingDiverged(
            f"{bad} became NaN or inf before iteration {step} (after {window_step}); the last good "
            f"checkpoint is {last if last else '(none yet)'}; try a lower learning rate or "
            "another loss"
        )


def log_window(
    window: list[torch.Tensor], step: int, window_step: int, seconds: float, started: float
) -> dict[str, float]:
    """Window means of the logged values as one metrics row (one host sync)."""
    values = torch.stack(window).float()
    means = values.mean(0).tolist()
    row: dict[str, float] = {"step": step, **dict(zip(LOGGED, means, strict=True))}
    row["d_acc"] = 0.5 * (row["d_acc_real"] + row["d_acc_fake"])
    row["it_per_s"] = (step - window_step) / max(seconds, 1e-9)
    row["elapsed_s"] = time.monotonic() - started
    return {
        k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()
    }
