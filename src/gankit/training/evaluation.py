"""Evaluation during training: FID and friends every `eval_every` iterations, best.pt by FID,
and warnings when the generator collapses."""

from __future__ import annotations

import logging
from typing import Any

import torch

from gankit.config import RunConfig
from gankit.errors import ConfigError
from gankit.metrics.features import EXTRACTORS
from gankit.metrics.suite import Evaluator
from gankit.run import RunFolder
from gankit.sampling import sample_balanced
from gankit.training.state import TrainState, to_checkpoint

logger = logging.getLogger(__name__)


def training_evaluator(config: RunConfig) -> Evaluator | None:
    """The metric suite when `eval_every`, `time_limit` or a budget asks for evaluation, else
    None."""
    sched, data = config.schedule, config.data
    if sched.eval_every is None and sched.time_limit is None and config.budget.seconds is None:
        return None
    if data.dataset not in EXTRACTORS:
        if sched.eval_every is not None:
            raise ConfigError(
                f"schedule.eval_every needs a dataset with a domain classifier "
                f"({sorted(EXTRACTORS)}), not {data.dataset!r}"
            )
        return None
    return Evaluator.load(data.dataset, data_dir=data.data_dir)


def evaluate_during_training(
    state: TrainState,
    evaluator: Evaluator,
    config: RunConfig,
    folder: RunFolder,
    device: torch.device,
) -> dict[str, Any]:
    """Scores `eval_samples` images (fixed seed), keeps best.pt by FID, and flags collapse."""
    images, labels = sample_balanced(state.sampler, config.schedule.eval_samples, 0, device)
    result = evaluator(images, labels)
    row = {"step": state.step, "kind": "eval", **result}
    if result["fid"] is not None and result["fid"] < state.metrics.get("best_fid", float("inf")):
        state.metrics["best_fid"], state.metrics["best_step"] = result["fid"], state.step
        folder.save_best(to_checkpoint(state, config, device))
    saturated = state.metrics.get("d_acc", 0.0) >= 0.99
    state.metrics["saturated_evals"] = (
        state.metrics.get("saturated_evals", 0) + 1 if saturated else 0
    )
    if result["classes_covered"] < 8:
        logger.warning(
            "possible mode collapse at iteration %d: only %d classes cover >= 2%% of samples",
            state.step,
            result["classes_covered"],
        )
    if state.metrics["saturated_evals"] >= 3:
        logger.warning("D accuracy has been ~100%% for 3 evaluations: G may have collapsed")
    logger.info(
        "iteration %d: FID %s (%s), recall %.3f, classes %d%s",
        state.step,
        "undefined" if result["fid"] is None else f"{result['fid']:.3f}",
        result["extractor"],
        result["recall"],
        result["classes_covered"],
        "" if result["cond_acc"] is None else f", cond_acc {result['cond_acc']:.3f}",
    )
    return row
