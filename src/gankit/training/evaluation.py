"""Evaluation during training: FID and friends every `eval_every` iterations (Stacked MNIST:
modes and KL), best.pt by FID (by KL), and warnings when the generator collapses."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from gankit.config import RunConfig
from gankit.errors import ConfigError
from gankit.evaluation import STACKED
from gankit.metrics.features import EXTRACTORS
from gankit.metrics.modes import MODES, mode_figures
from gankit.metrics.suite import Evaluator
from gankit.run import RunFolder
from gankit.sampling import sample_balanced
from gankit.training.state import TrainState, to_checkpoint

logger = logging.getLogger(__name__)


class ModeJudge:
    """Stacked MNIST's judge during training: `metrics.modes` on the MNIST judge's features (as
    `gankit evaluate` reads a stacked-mnist run)."""

    def __init__(self, judge: Evaluator) -> None:
        self.judge = judge

    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        return mode_figures(images, self.judge.extractor, self.judge.reference)


def training_evaluator(config: RunConfig) -> Evaluator | ModeJudge | None:
    """The metric suite (Stacked MNIST: the mode count) when `eval_every`, `time_limit` or a
    budget asks for evaluation, else None."""
    sched, data = config.schedule, config.data
    if sched.eval_every is None and sched.time_limit is None and config.budget.seconds is None:
        return None
    if data.dataset == STACKED:
        return ModeJudge(Evaluator.load("mnist-sample"))
    if data.dataset not in EXTRACTORS:
        if sched.eval_every is not None:
            raise ConfigError(
                f"schedule.eval_every needs a dataset with a domain classifier "
                f"({sorted(EXTRACTORS)}) or {STACKED}, not {data.dataset!r}"
            )
        return None
    return Evaluator.load(data.dataset, data_dir=data.data_dir)


def evaluate_during_training(
    state: TrainState,
    evaluator: Evaluator | ModeJudge,
    config: RunConfig,
    folder: RunFolder,
    device: torch.device,
) -> dict[str, Any]:
    """Scores `eval_samples` images (fixed seed), keeps best.pt by FID (Stacked MNIST: by KL to
    uniform), and flags collapse."""
    images, labels = sample_balanced(state.sampler, config.schedule.eval_samples, 0, device)
    result = evaluator(images, labels)
    row = {"step": state.step, "kind": "eval", **result}
    score = "kl" if isinstance(evaluator, ModeJudge) else "fid"
    if result[score] is not None and result[score] < state.metrics.get(
        f"best_{score}", float("inf")
    ):
        state.metrics[f"best_{score}"], state.metrics["best_step"] = result[score], state.step
        folder.save_best(to_checkpoint(state, config, device))
    saturated = state.metrics.get("d_acc", 0.0) >= 0.99
    state.metrics["saturated_evals"] = (
        state.metrics.get("saturated_evals", 0) + 1 if saturated else 0
    )
    if state.metrics["saturated_evals"] >= 3:
        logger.warning("D accuracy has been ~100%% for 3 evaluations: G may have collapsed")
    if isinstance(evaluator, ModeJudge):
        _log_modes(state.step, result)
    else:
        _log_figures(state.step, result)
    return row


def _log_modes(step: int, result: dict[str, Any]) -> None:
    # a uniform generator shows nearly every mode at these sample sizes (1000 (1 - e^-n/1000))
    expected = round(MODES * (1 - math.exp(-result["n"] / MODES)))
    if result["modes"] < 0.5 * expected:
        logger.warning(
            "possible mode collapse at iteration %d: %d of %d modes in %d samples (a uniform "
            "generator shows about %d)",
            step,
            result["modes"],
            MODES,
            result["n"],
            expected,
        )
    # both figures depend on n: name it and what a uniform generator would score at that n
    logger.info(
        "iteration %d: modes %d of %d in %d samples (a uniform generator shows about %d), "
        "KL to uniform %.4f (its floor at this n: %.4f)",
        step,
        result["modes"],
        MODES,
        result["n"],
        expected,
        result["kl"],
        result["kl_floor"],
    )


def _log_figures(step: int, result: dict[str, Any]) -> None:
    if result["classes_covered"] < 8:
        logger.warning(
            "possible mode collapse at iteration %d: only %d classes cover >= 2%% of samples",
            step,
            result["classes_covered"],
        )
    logger.info(
        "iteration %d: FID %s (%s), recall %.3f, classes %d%s",
        step,
        "undefined" if result["fid"] is None else f"{result['fid']:.3f}",
        result["extractor"],
        result["recall"],
        result["classes_covered"],
        "" if result["cond_acc"] is None else f", cond_acc {result['cond_acc']:.3f}",
    )
