"""Which conditioning, losses and fixes beat the reference CGAN, at equal wall time?

Each configuration trains with `--time-limit` (the same CPU budget for all, one thread each,
`--jobs` at a time), then 10,000 samples of its final generator (EMA where used; balanced
labels) are scored with the domain-classifier metrics. Finalists run over several seeds.

  python benchmarks/bench_ablation.py [--dataset mnist-sample --budget 300 --jobs 2]
  python benchmarks/bench_ablation.py --only cdcgan --seeds 1,2,3 --budget 600
Appends to benchmarks/results/bench_ablation.jsonl (results accumulate across runs) and
rewrites benchmarks/results/bench_ablation.md from all rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from gankit.loading import load_generator
from gankit.metrics.suite import Evaluator
from gankit.sampling import sample_balanced

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "_work"
QUIRKS_OFF = {
    "quirks.separate_d_steps": False,
    "quirks.g_eval_for_fakes": False,
    "quirks.reuse_noise": False,
    "quirks.real_labels_for_fakes": False,
}
# name -> (preset, overrides, what it tests)
CONFIGS = {
    "seed-cgan": ("seed-cgan", {}, "the reference: MLP, multiply, Keras quirks"),
    "mlp-multiply-noquirks": ("seed-cgan", QUIRKS_OFF, "reference with its 4 quirks off"),
    # the reference with one quirk switched off at a time
    "mlp-quirk-torch-init": (
        "seed-cgan",
        {"model.init": "torch"},
        "reference, PyTorch's default init instead of Keras'",
    ),
    "mlp-quirk-g-train-fakes": (
        "seed-cgan",
        {"quirks.g_eval_for_fakes": False},
        "reference, G in training mode for D's fakes",
    ),
    "mlp-multiply-fresh-noise": (
        "seed-cgan",
        {"quirks.reuse_noise": False},
        "reference, fresh noise in G's step",
    ),
    "mlp-quirk-random-fake-labels": (
        "seed-cgan",
        {"quirks.real_labels_for_fakes": False},
        "reference, random labels for D's fakes",
    ),
    "mlp-quirk-one-d-step": (
        "seed-cgan",
        {"quirks.separate_d_steps": False},
        "reference, one D step on real + fake",
    ),
    "mlp-concat": (
        "seed-cgan",
        {**QUIRKS_OFF, "model.conditioning": "concat"},
        "one-hot concat (the CGAN paper)",
    ),
    "mlp-projection": (
        "seed-cgan",
        {**QUIRKS_OFF, "model.conditioning": "projection"},
        "projection D + conditional BatchNorm G",
    ),
    "mlp-acgan": ("seed-cgan", {**QUIRKS_OFF, "model.conditioning": "acgan"}, "ACGAN head"),
    "mlp-cgan-fixed": ("mlp-cgan-fixed", {}, "concat, quirks off, EMA"),
    "cdcgan": ("cdcgan", {}, "the preset: conv, projection, SN, hinge, EMA"),
    "cdcgan-diffaugment": ("cdcgan", {"train.diffaugment": True}, "cdcgan with DiffAugment"),
    "cdcgan-concat-bce": (
        "cdcgan",
        {
            "model.conditioning": "concat",
            "model.spectral_norm": False,
            "train.loss": "nonsaturating",
            "train.diffaugment": True,
        },
        "conv, concat, BCE, EMA, DiffAugment",
    ),
    "cdcgan-acgan": (
        "cdcgan",
        {"model.conditioning": "acgan", "train.diffaugment": True},
        "conv, ACGAN head, SN, hinge, EMA, DiffAugment",
    ),
}
COLUMNS = ("fid", "kid", "precision", "recall", "coverage", "classes_covered", "cond_acc")


def command(name: str, dataset: str, seed: int, budget: float) -> tuple[list[str], Path]:
    preset, overrides, _ = CONFIGS[name]
    out = WORK / "ablation" / f"{name}-{dataset}-s{seed}"
    argv = [
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
        "--time-limit",
        str(budget),
        "--iterations",
        "1000000",
        "--checkpoint-every",
        "100000",
        "--sample-every",
        "1000",
    ]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    return argv, out


def run_all(jobs: list[tuple[str, int]], dataset: str, budget: float, parallel: int) -> None:
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < parallel:
            name, seed = pending.pop(0)
            argv, out = command(name, dataset, seed, budget)
            out.parent.mkdir(parents=True, exist_ok=True)
            log = open(out.parent / f"{out.name}.log", "w")
            running.append(subprocess.Popen(argv, stdout=log, stderr=log))
        time.sleep(1)
        for process in [p for p in running if p.poll() is not None]:
            if process.returncode:
                print(f"failed: {' '.join(process.args)}", file=sys.stderr)
            running.remove(process)


def evaluate(jobs: list[tuple[str, int]], dataset: str, budget: float, n: int) -> list[dict]:
    evaluator = Evaluator.load(dataset)
    rows = []
    for name, seed in jobs:
        _, out = command(name, dataset, seed, budget)
        loaded = load_generator(out)
        images, labels = sample_balanced(loaded.model, n, seed=0)
        result = evaluator(images, labels)
        metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        wall = max(r.get("elapsed_s", 0) for r in metrics)
        rows.append(
            {
                "config": name,
                "dataset": dataset,
                "seed": seed,
                "budget_s": budget,
                "iterations": loaded.step,
                "wall_s": wall,
                "what": CONFIGS[name][2],
                **{k: result[k] for k in COLUMNS},
            }
        )
        print(f"{name} seed {seed}: {loaded.step} its, FID {result['fid']:.2f}", file=sys.stderr)
    return rows


def write_table(rows: list[dict]) -> str:
    lines = [
        "| config | dataset | seed | budget s | iterations | " + " | ".join(COLUMNS) + " | what |",
        "|" + "---|" * (6 + len(COLUMNS)),
    ]
    for r in rows:
        cells = [
            r["config"],
            r["dataset"],
            str(r["seed"]),
            f"{r['budget_s']:.0f}",
            str(r["iterations"]),
        ]
        for key in COLUMNS:
            value = r[key]
            cells.append(
                "-" if value is None else str(value) if isinstance(value, int) else f"{value:.3g}"
            )
        lines.append("| " + " | ".join(cells) + f" | {r['what']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-sample")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per configuration")
    parser.add_argument("--only", help="comma-separated config names (default: all)")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(CONFIGS)
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {sorted(CONFIGS)}")
    jobs = [(name, int(seed)) for seed in args.seeds.split(",") for name in names]
    run_all(jobs, args.dataset, args.budget, args.jobs)
    torch.set_num_threads(2)
    rows = evaluate(jobs, args.dataset, args.budget, args.n)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "bench_ablation.jsonl", "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    every = [json.loads(x) for x in (RESULTS / "bench_ablation.jsonl").read_text().splitlines()]
    latest = {(r["config"], r["dataset"], r["seed"], r["budget_s"]): r for r in every}
    text = write_table(list(latest.values()))  # a rerun replaces its row, in the first's place
    (RESULTS / "bench_ablation.md").write_text(text + "\n")
    print(write_table(rows))


if __name__ == "__main__":
    main()
