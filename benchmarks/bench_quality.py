"""Quality of the reference presets over training, measured with the domain-classifier metrics.

Trains each (preset, dataset) for 20,000 iterations with checkpoints at the milestones, then
evaluates 10,000 samples of each milestone checkpoint (balanced labels for the CGAN) and the
real-data floor. Runs train in parallel processes, one thread each (these small MLPs gain
little from a second thread; see bench_train).

  python benchmarks/bench_quality.py [--datasets mnist-sample,fashion-mnist] [--jobs 2]
Writes benchmarks/results/bench_quality.{md,json}; runs go to benchmarks/_work/.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from gankit.loading import load_generator
from gankit.metrics.suite import Evaluator, real_floor_images
from gankit.sampling import sample_balanced

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "_work"
MILESTONES = (2000, 5000, 10000, 20000)
COLUMNS = ("fid", "kid", "is", "precision", "recall", "coverage", "classes_covered", "cond_acc")


def train_command(preset: str, dataset: str, seed: int) -> list[str]:
    out = WORK / f"{preset}-{dataset}-s{seed}"
    return [
        sys.executable,
        "-m",
        "gankit",
        "train",
        "--preset",
        preset,
        "--dataset",
        dataset,
        "--out",
        str(out),
        "--overwrite",
        "--no-progress",
        "--seed",
        str(seed),
        "--threads",
        "1",
        "--checkpoint-every",
        "1000",
        "--set",
        "schedule.keep_checkpoints=25",
    ]


def train_all(jobs: list[tuple[str, str]], seed: int, parallel: int) -> None:
    pending = list(jobs)
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < parallel:
            preset, dataset = pending.pop(0)
            log = open(WORK / f"{preset}-{dataset}-s{seed}.log", "w")
            running.append(subprocess.Popen(train_command(preset, dataset, seed), stderr=log))
        running[0].wait()
        if running[0].returncode:
            raise RuntimeError(f"training failed: {running[0].args}")
        running.pop(0)


def elapsed_at(run: Path, step: int) -> float:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return next(r["elapsed_s"] for r in rows if r.get("step") == step and "elapsed_s" in r)


def evaluate_all(jobs: list[tuple[str, str]], seed: int, n: int) -> list[dict]:
    rows = []
    for dataset in dict.fromkeys(d for _, d in jobs):
        evaluator = Evaluator.load(dataset)
        images, labels, what = real_floor_images(dataset, n)
        floor = evaluator(images, labels)
        rows.append({"dataset": dataset, "preset": f"real data ({what})", "step": None, **floor})
        for preset in (p for p, d in jobs if d == dataset):
            run = WORK / f"{preset}-{dataset}-s{seed}"
            for step in MILESTONES:
                loaded = load_generator(run, str(run / "checkpoints" / f"step_{step:07d}.pt"))
                images, labels = sample_balanced(loaded.model, n, seed=0)
                result = evaluator(images, labels)
                rows.append(
                    {
                        "dataset": dataset,
                        "preset": preset,
                        "step": step,
                        "wall_s": elapsed_at(run, step),
                        **result,
                    }
                )
                print(f"{dataset} {preset} {step}: FID {result['fid']:.2f}", file=sys.stderr)
    return rows


def write(rows: list[dict], n: int) -> None:
    header = "| dataset | model | iterations | wall s | " + " | ".join(COLUMNS) + " |"
    lines = [
        f"Quality of the reference presets ({n} samples; features of the domain classifier; "
        "FID/KID lower is better, the rest higher)",
        "",
        header,
        "|" + "---|" * (4 + len(COLUMNS)),
    ]
    for r in rows:
        cells = [r["dataset"], r["preset"], str(r["step"] or "-"), f"{r.get('wall_s', 0):.0f}"]
        for key in COLUMNS:
            value = r[key]
            cells.append(
                "-" if value is None else str(value) if isinstance(value, int) else f"{value:.3g}"
            )
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_quality.md").write_text(text + "\n")
    (RESULTS / "bench_quality.json").write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist-sample,fashion-mnist")
    parser.add_argument("--presets", default="seed-gan,seed-cgan")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="training processes at once")
    parser.add_argument("--n", type=int, default=10_000, help="samples per evaluation")
    parser.add_argument("--skip-training", action="store_true", help="evaluate existing runs")
    args = parser.parse_args()
    jobs = [(p, d) for d in args.datasets.split(",") for p in args.presets.split(",")]
    WORK.mkdir(parents=True, exist_ok=True)
    if not args.skip_training:
        train_all(jobs, args.seed, args.jobs)
    torch.set_num_threads(2)
    write(evaluate_all(jobs, args.seed, args.n), args.n)


if __name__ == "__main__":
    main()
