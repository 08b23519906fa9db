"""Time to evaluate 10,000 generated samples (generation + features + every metric).

Uses the seed-cgan architecture with freshly initialised weights (the time does not depend on
what G has learnt) and the mnist-sample reference, computed once and cached beforehand.

  python benchmarks/bench_evaluate.py [--n 10000 --repeats 3]
Writes benchmarks/results/bench_evaluate.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from gankit.config import load_preset
from gankit.metrics import distances
from gankit.metrics.features import extract
from gankit.metrics.suite import Evaluator
from gankit.models import build_models
from gankit.sampling import sample_balanced
from machine import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    generator, _ = build_models(load_preset("seed-cgan").model, (1, 28, 28), 10)
    evaluator = Evaluator.load("mnist-sample")  # reference cached here, outside the timing
    parts: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        t_sample, (images, labels) = timed(sample_balanced, generator, args.n)
        t_total, _ = timed(evaluator, images, labels)
        t_feat, (features, _) = timed(extract, evaluator.extractor, images)
        t_kid, _ = timed(distances.kernel_distance, evaluator.reference.subset, features)
        subset = features[:5000]
        t_prdc, _ = timed(distances.precision_recall, evaluator.reference.subset, subset)
        for key, value in (
            ("generate", t_sample),
            ("evaluate (all metrics)", t_total),
            ("  of which features", t_feat),
            ("  of which KID", t_kid),
            ("  of which precision/recall", t_prdc),
        ):
            parts.setdefault(key, []).append(value)
    medians = {k: statistics.median(v) for k, v in parts.items()}
    total = medians["generate"] + medians["evaluate (all metrics)"]
    machine = (
        f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, torch {torch.__version__}"
    )
    lines = [
        f"Evaluating {args.n} samples (median of {args.repeats}; {machine}; "
        f"{torch.get_num_threads()} threads)",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in medians.items()],
        f"| **generate + evaluate** | **{total:.2f}** |",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_evaluate.md").write_text(text + "\n")
    (RESULTS / "bench_evaluate.json").write_text(json.dumps({"n": args.n, **medians}, indent=2))


if __name__ == "__main__":
    main()
