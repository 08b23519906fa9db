"""Time to quality: training wall time until the domain-classifier FID first reaches a bar.

The bar is seed-cgan's FID after its full 20,000 iterations on mnist-sample, measured on the
same seed-cgan run (or given with --threshold), so seed-cgan reaches it at its last checkpoint
at the latest and its seed-to-seed spread does not decide the comparison. Each preset trains
once, alone, with its preset defaults and a checkpoint every K iterations; afterwards the
checkpoints are evaluated in order the way bench_quality evaluates (10,000 samples, balanced
labels), so evaluation time is not counted, and the time reported is the run's own
`elapsed_s` at that checkpoint (grids and checkpoint writes included).

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


def final_fid(run: Path, evaluator: Evaluator, n: int, cache: dict) -> float:
    """FID of the run's last checkpoint: seed-cgan's at 20,000 iterations sets the bar."""
    last = max((run / "checkpoints").glob("step_*.pt"))
    return score(last, run, evaluator, n, cache)["fid"]


def score(path: Path, run: Path, evaluator: Evaluator, n: int, cache: dict) -> dict:
    """The metric suite on n balanced samples of one checkpoint (each scored once)."""
    if path not in cache:
        loaded = load_generator(run, str(path))
        images, labels = sample_balanced(loaded.model, n, seed=0)
        cache[path] = evaluator(images, labels)
        print(f"{run.name} {path.stem}: FID {cache[path]['fid']:.2f}", file=sys.stderr)
    return cache[path]


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


def first_reaching(run: Path, evaluator: Evaluator, threshold: float, n: int, cache: dict) -> dict:
    """Scores the run's checkpoints in order until one's FID is at or below `threshold`."""
    times = elapsed(run)
    best: dict = {}
    for path in sorted((run / "checkpoints").glob("step_*.pt")):
        step = int(path.stem.split("_")[1])
        result = score(path, run, evaluator, n, cache)
        row = {"step": step, "wall_s": times[step], "fid": result["fid"]}
        row["cond_acc"] = result["cond_acc"]
        if not best or row["fid"] < best["fid"]:
            best = row
        if result["fid"] <= threshold:
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
    parser.add_argument(
        "--threshold", type=float, help="FID bar (default: seed-cgan's at its last checkpoint)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=10_000, help="samples per evaluation")
    args = parser.parse_args()
    existing = dict(item.split("=", 1) for item in args.existing)
    names = [spec.split(":")[0] for spec in args.presets.split(",")]
    if args.threshold is None and "seed-cgan" not in names:
        parser.error("without --threshold, --presets must include seed-cgan (it sets the bar)")
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
    cache: dict = {}
    threshold = args.threshold
    if threshold is None:
        threshold = final_fid(runs["seed-cgan"], evaluator, args.n, cache)
    rows = [
        {"preset": p, **first_reaching(run, evaluator, threshold, args.n, cache)}
        for p, run in runs.items()
    ]
    write(rows, threshold, args)


def write(rows: list[dict], threshold: float, args: argparse.Namespace) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    reference = next((r for r in rows if r["preset"] == "seed-cgan" and r["reached"]), None)
    lines = [
        f"Time to quality on {DATASET}: training wall time until FID <= {threshold:.3g} "
        f"(seed-cgan's FID at 20,000 iterations, in the same seed-cgan run; grids and "
        f"checkpoints included); {args.n} samples per evaluation, seed "
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
