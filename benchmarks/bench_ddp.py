"""Data-parallel scaling: iterations/s of seed-cgan with 1 and 2 processes (gloo, CPU).

Global batch fixed (each of 2 processes takes half), one thread per process, so 2 processes
use both cores. Reports the in-loop rate from metrics.jsonl (start-up excluded), median of
--repeats runs.

  python benchmarks/bench_ddp.py [--iterations 1000 --batch-size 64 --repeats 3]
Writes benchmarks/results/bench_ddp.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"


def rate(nproc: int, batch: int, iterations: int, out: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "gankit",
        "train",
        "--preset",
        "seed-cgan",
        "--out",
        str(out),
        "--overwrite",
        "--no-progress",
        "--seed",
        "0",
        "--batch-size",
        str(batch),
        "--iterations",
        str(iterations),
        "--log-every",
        str(iterations // 4),
        "--sample-every",
        str(10 * iterations),
        "--checkpoint-every",
        str(10 * iterations),
        "--threads",
        "1",
        "--nproc",
        str(nproc),
    ]
    subprocess.run(command, check=True, capture_output=True)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["it_per_s"] for r in rows[1:])  # the first window warms up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for nproc in (1, 2):
                results[nproc].append(
                    rate(nproc, args.batch_size, args.iterations, Path(tmp) / "r")
                )
    medians = {n: statistics.median(v) for n, v in results.items()}
    lines = [
        f"DDP scaling, seed-cgan, global batch {args.batch_size}, 1 thread per process "
        f"({cpu_name()}, {os.cpu_count()} cores; median of {args.repeats})",
        "",
        "| processes | iterations/s | images/s | speed-up |",
        "|---|---|---|---|",
    ]
    for n, value in medians.items():
        lines.append(
            f"| {n} | {value:.1f} | {value * args.batch_size:.0f} | {value / medians[1]:.2f}x |"
        )
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_ddp.md").write_text(text + "\n")
    (RESULTS / "bench_ddp.json").write_text(json.dumps(medians, indent=2))


if __name__ == "__main__":
    main()
