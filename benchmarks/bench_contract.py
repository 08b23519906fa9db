"""The recommended CGAN's check, exactly as a user runs it: `cdcgan` with preset defaults.

For each seed: `gankit train --preset cdcgan --dataset D --time-limit T --seed S`, then
`gankit sample RUN --n 5000 --labels balanced` and `gankit evaluate` on those samples. The bars
come from bench_quality's seed-cgan rows (FID at 10,000 and 20,000 iterations): FID at most a
third of seed-cgan's at 10,000 iterations, conditional accuracy >= 0.97 (>= 0.98 is the aim),
recall >= 0.5, all classes covered. Run alone: the time limit makes the result depend on speed.

  python benchmarks/bench_contract.py [--dataset mnist-sample --seeds 1,2,3 --limits 600,120]
Writes benchmarks/results/bench_contract_<dataset>.{md,json}; runs go to benchmarks/_work/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "_work" / "contract"


def gankit(*args: str) -> str:
    command = [sys.executable, "-m", "gankit", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def reference_fid(dataset: str, step: int) -> float:
    rows = json.loads((RESULTS / "bench_quality.json").read_text())
    return next(
        r["fid"]
        for r in rows
        if r["preset"] == "seed-cgan" and r["dataset"] == dataset and r["step"] == step
    )


def check(dataset: str, seed: int, limit: int, n: int) -> dict:
    run = WORK / f"cdcgan-{dataset}-t{limit}-s{seed}"
    gankit(
        "train",
        "--preset",
        "cdcgan",
        "--dataset",
        dataset,
        "--time-limit",
        str(limit),
        "--seed",
        str(seed),
        "--out",
        str(run),
        "--overwrite",
        "--no-progress",
    )
    gankit("sample", str(run), "--n", str(n), "--labels", "balanced")
    result = json.loads(
        gankit("evaluate", str(run / "samples.npz"), "--dataset", dataset, "--json")
    )
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in rows if "elapsed_s" in r]
    return {
        "seed": seed,
        "time_limit": limit,
        "iterations": timed[-1]["step"],
        "train_s": timed[-1]["elapsed_s"],
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-sample")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--limits", default="600,120", help="time limits; the first is checked")
    parser.add_argument("--n", type=int, default=5000, help="samples scored")
    args = parser.parse_args()
    limits = [int(x) for x in args.limits.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    WORK.mkdir(parents=True, exist_ok=True)
    jobs = [(limits[0], s) for s in seeds] + [(limit, seeds[0]) for limit in limits[1:]]
    rows = []
    for limit, seed in jobs:
        rows.append(check(args.dataset, seed, limit, args.n))
        print(f"t={limit} seed {seed}: FID {rows[-1]['fid']:.2f}", file=sys.stderr)
    write(rows, args, limits[0])


def write(rows: list[dict], args: argparse.Namespace, checked: int) -> None:
    fid10k, fid20k = (reference_fid(args.dataset, step) for step in (10_000, 20_000))
    bar = fid10k / 3
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    lines = [
        f"cdcgan with preset defaults on {args.dataset} ({machine}; PyTorch's default threads): "
        f"`gankit train --time-limit T`, then {args.n} balanced samples scored. Bars: FID <= "
        f"{bar:.2f} (a third of seed-cgan's {fid10k:.1f} at 10k iterations; at 20k it has "
        f"{fid20k:.1f}), cond_acc >= 0.97 (aim 0.98), recall >= 0.5, all classes.",
        "",
        "| time limit s | seed | iterations | train s | fid | kid | precision | recall | "
        "classes | cond_acc | bars met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = (
            r["fid"] <= bar
            and r["cond_acc"] >= 0.97
            and r["recall"] >= 0.5
            and r["classes_covered"] == 10
        )
        verdict = ("yes" if met else "no") if r["time_limit"] == checked else "-"
        lines.append(
            f"| {r['time_limit']} | {r['seed']} | {r['iterations']} | {r['train_s']:.0f} | "
            f"{r['fid']:.3g} | {r['kid']:.3g} | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['classes_covered']} | {r['cond_acc']:.4f} | {verdict} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"bench_contract_{args.dataset}.md").write_text(text)
    (RESULTS / f"bench_contract_{args.dataset}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
