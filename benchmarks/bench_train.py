"""Training speed: gankit's presets against the fixed reference loop, in one run.

Each measurement is a whole process (`gankit train` with grids and checkpoints off, or the
reference loop `ref_loop.py`, which implements seed-cgan's algorithm the way common PyTorch GAN
examples do), alternated, repeated, and summarised by medians. Also reported: the in-loop time
per iteration (from the run's metrics, without start-up), matmul FLOP/s against this machine's
GEMM throughput measured in the same run, and peak resident memory of each process.

  python benchmarks/bench_train.py [--iterations 3000 --repeats 5 --batch-sizes 32,256]
Writes benchmarks/results/bench_train.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_REFERENCE = ROOT.parent / "shared" / "bench" / "ref_loop.py"


def gankit_run(preset: str, batch: int, iterations: int, out: Path) -> dict[str, float]:
    command = [
        sys.executable, "-m", "gankit", "train", "--preset", preset, "--out", str(out),
        "--overwrite", "--no-progress", "--seed", "0", "--batch-size", str(batch),
        "--iterations", str(iterations), "--log-every", str(iterations),
        "--sample-every", str(10 * iterations), "--checkpoint-every", str(10 * iterations),
    ]  # fmt: skip
    seconds, peak, _ = run_process(command)
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    return {
        "ms_process": 1000 * seconds / iterations,
        "ms_loop": 1000 / row["it_per_s"],
        "peak_mb": peak,
    }


def reference_run(script: Path, batch: int, iterations: int) -> dict[str, float]:
    command = [
        sys.executable,
        str(script),
        "--iterations",
        str(iterations),
        "--batch-size",
        str(batch),
    ]
    seconds, peak, stdout = run_process(command)
    ms_loop = float(stdout.strip().splitlines()[-1].split("=")[1])
    return {"ms_process": 1000 * seconds / iterations, "ms_loop": ms_loop, "peak_mb": peak}


def run_process(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one child process (os.wait4 gives its rusage)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if process.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{err.read()[-2000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def gemm_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Median fp32 throughput of a large torch.mm on this machine (GFLOP/s)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def matmul_flops_per_iteration(preset: str, batch: int) -> float:
    """FLOPs of one training iteration, counted by PyTorch's FlopCounterMode."""
    from gankit.config import load_preset
    from gankit.data import ImageDataset
    from gankit.training.loop import build_state, train_iteration
    from gankit.training.step import StepOptions

    config = load_preset(preset).with_overrides({"train.seed": 0, "train.batch_size": batch})
    images = torch.zeros(64, 1, 28, 28)
    labels = torch.arange(64) % 10
    dataset = ImageDataset("zeros", images, labels, 10)
    state = build_state(config, dataset, torch.device("cpu"))
    with FlopCounterMode(display=False) as counter:
        train_iteration(state, images, labels, config, StepOptions.from_config(config))
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", default="32")
    parser.add_argument("--presets", default="seed-gan,seed-cgan")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    args = parser.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    presets = args.presets.split(",")
    has_reference = args.reference.is_file()
    gemm = gemm_gflops()
    samples: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for batch in batches:
                for preset in presets:
                    result = gankit_run(preset, batch, args.iterations, Path(tmp) / "run")
                    samples.setdefault((preset, batch), []).append(result)
                    if has_reference and preset == "seed-cgan":
                        ref = reference_run(args.reference, batch, args.iterations)
                        samples.setdefault(("reference loop", batch), []).append(ref)
            print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
    rows = []
    for (name, batch), runs in samples.items():
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        flops = matmul_flops_per_iteration(name if name != "reference loop" else "seed-cgan", batch)
        rows.append({"config": name, "batch": batch, **median, "gflop_per_iter": flops / 1e9,
                     "gflops_achieved": flops / (median["ms_loop"] / 1000) / 1e9})  # fmt: skip
    for row in rows:
        ref = next(
            (r for r in rows if r["config"] == "reference loop" and r["batch"] == row["batch"]),
            None,
        )
        row["speedup_vs_reference"] = ref["ms_process"] / row["ms_process"] if ref else None
    write(rows, gemm, args)


def write(rows: list[dict], gemm: float, args: argparse.Namespace) -> None:
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    lines = [
        f"Training speed ({args.iterations} iterations per process, median of {args.repeats}; "
        f"{machine}; GEMM {gemm:.0f} GFLOP/s)",
        "",
        "| config | batch | ms/iter (process) | ms/iter (loop) | images/s | speed-up vs reference "
        "| GFLOP/iter | matmul GFLOP/s (% of GEMM) | peak MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speedup = f"{r['speedup_vs_reference']:.2f}x" if r["speedup_vs_reference"] else "-"
        lines.append(
            f"| {r['config']} | {r['batch']} | {r['ms_process']:.2f} | {r['ms_loop']:.2f} | "
            f"{1000 * r['batch'] / r['ms_loop']:.0f} | {speedup} | {r['gflop_per_iter']:.3f} | "
            f"{r['gflops_achieved']:.0f} ({100 * r['gflops_achieved'] / gemm:.0f}%) | "
            f"{r['peak_mb']:.0f} |"
        )
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_train.md").write_text(text + "\n")
    (RESULTS / "bench_train.json").write_text(
        json.dumps({"gemm_gflops": gemm, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
