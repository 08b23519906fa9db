"""Time to quality: training wall time until the domain-classifier FID first falls below a bar.

The bar is seed-cgan's FID after its full 20,000 iterations on mnist-sample (read from
bench_quality's results, or given with --threshold). Each preset trains once, alone, with its
preset defaults and a checkpoint every K iterations; afterwards every checkpoint is evaluated
the way bench_quality evaluates (10,000 samples, balanced labels), so evaluation time is not
counted, and the time reported is the run's own `elapsed_s` at that checkpoint (grids and
checkpoint writes included).

  python benchmarks/bench_time_to_quality.py [--presets seed-cgan:1000:20000,cdcgan:250:5000]
      [--existing seed-cgan=DIR]   # a finished run of the same command, instead of training
Writes benchmarks/results/bench_time_to_quality.{md,json}; runs go to benchmarks/_work/.
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

from gankit.metrics.evaluate import Evaluator
from gankit.sampling import load_generator, sample_balanced

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "_work"
DATASET = "mnist-sample"


def reference_threshold() -> float:
    """seed-cgan's FID at 20,000 iterations on mnist-sample, from bench_quality.json."""
    rows = json.loads((RESULTS / "bench_quality.json").read_text())
    return next(
        r["fid"]
        for r in rows
        if r["preset"] == "seed-cgan" and r["dataset"] == DATASET and r["step"] == 20_000
    )


def train(preset: str, every: int, iterations: int, seed: int, threads: int) -> Path:
    out = WORK / f"ttq-{preset}-s{seed}"
    command = [
        sys.executable, "-m", "gankit", "train", "--preset", preset, "--dataset", DATASET,
        "--out", str(out), "--overwrite", "--no-progress", "--seed", str(seed),
        "--threads", str(threads), "--iterations", str(iterations),
        "--checkpoint-every", str(every), "--set", "schedule.keep_checkpoints=1000",
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return out


def elapsed(run: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["elapsed_s"] for r in rows if "elapsed_s" in r}


def first_below(run: Path, evaluator: Evaluator, threshold: float, n: int) -> dict:
    """Evaluates the run's checkpoints in order until one's FID is below `threshold`."""
    times = elapsed(run)
    best: dict = {}
    for path in sorted((run / "checkpoints").glob("step_*.pt")):
        step = int(path.stem.split("_")[1])
        loaded = load_generator(run, str(path))
        images, labels = sample_balanced(loaded.model, n, seed=0)
        result = evaluator(images, labels)
        row = {"step": step, "wall_s": times[step], "fid": result["fid"]}
        row["cond_acc"] = result["cond_acc"]
        print(f"{run.name} {step}: FID {result['fid']:.2f}", file=sys.stderr)
        if not best or row["fid"] < best["fid"]:
            best = row
        if result["fid"] < threshold:
            return {**row, "reached": True}
    return {**best, "reached": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets",
        default="seed-cgan:1000:20000,cdcgan:250:5000",
        help="PRESET:CHECKPOINT_EVERY:ITERATIONS, comma-separated",
    )
    parser.add_argument("--existing", action="append", default=[], help="PRESET=RUN_DIR")
    parser.add_argument("--threshold", type=float, help="FID bar (default: from bench_quality)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=10_000, help="samples per evaluation")
    args = parser.parse_args()
    threshold = args.threshold if args.threshold is not None else reference_threshold()
    existing = dict(item.split("=", 1) for item in args.existing)
    WORK.mkdir(parents=True, exist_ok=True)
    runs = {}
    for spec in args.presets.split(","):
        preset, every, iterations = spec.split(":")
        if preset in existing:
            runs[preset] = Path(existing[preset])
        else:
            runs[preset] = train(preset, int(every), int(iterations), args.seed, args.threads)
    torch.set_num_threads(2)
    evaluator = Evaluator.load(DATASET)
    rows = [
        {"preset": p, **first_below(run, evaluator, threshold, args.n)} for p, run in runs.items()
    ]
    write(rows, threshold, args)


def write(rows: list[dict], threshold: float, args: argparse.Namespace) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    reference = next((r for r in rows if r["preset"] == "seed-cgan" and r["reached"]), None)
    lines = [
        f"Time to quality on {DATASET}: training wall time until FID < {threshold:.3g} "
        f"(seed-cgan's FID at 20,000 iterations); {args.n} samples per evaluation, seed "
        f"{args.seed}, {args.threads} threads; {machine}",
        "",
        "| preset | reached | iterations | wall s | FID there | cond_acc there | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speedup = f"{reference['wall_s'] / r['wall_s']:.1f}x" if reference and r["reached"] else "-"
        reached = "yes" if r["reached"] else "no (best shown)"
        lines.append(
            f"| {r['preset']} | {reached} | {r['step']} | {r['wall_s']:.0f} | {r['fid']:.3g} | "
            f"{r['cond_acc']:.3f} | {speedup} |"
        )
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_time_to_quality.md").write_text(text + "\n")
    payload = {"threshold": threshold, "rows": rows}
    (RESULTS / "bench_time_to_quality.json").write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
