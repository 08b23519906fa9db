"""GPU figures on CUDA: the full seed-cgan run, cdcgan's time to seed-cgan's quality, and
bf16 and channels-last against fp32 for cdcgan's training step.

  python benchmarks/bench_gpu.py [--samples FILE.npz] [--quick]

1. `gankit train --preset seed-cgan --device cuda`, its 20,000 iterations timed as a user runs
   it (the whole process) and by the run itself (`elapsed_s`: the loop, grids, checkpoints).
2. Time to quality as in bench_time_to_quality.py, on CUDA: seed-cgan (checkpoint every 1,000)
   sets the bar of FID, conditional accuracy and recall at 20,000 iterations; cdcgan's
   checkpoints (every 250) are scored in order until one reaches all three. 10,000 samples
   per evaluation; evaluation time is not counted.
3. One cdcgan D+G step (batch 64, BCE, Adam) in fp32 and bf16 autocast, contiguous and
   channels-last, through the Python API: median of 5 timings of 200 steps each.
`--samples` saves 2,000 balanced samples (seed 5) of the seed-cgan run, for the judge study.
Writes benchmarks/results/bench_gpu.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from bench_time_to_quality import final_bar, first_reaching, table, train
from gankit.config import load_preset
from gankit.images import to_uint8
from gankit.loading import load_generator
from gankit.metrics.suite import Evaluator
from gankit.models import build_models
from gankit.sampling import sample_balanced

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "_work" / "gpu"


def full_run(seed: int, device: str) -> dict:
    """seed-cgan as a user runs it on the GPU, timed from outside and from inside."""
    out = WORK / "seed-cgan-full"
    command = [
        sys.executable,
        "-m",
        "gankit",
        "train",
        "--preset",
        "seed-cgan",
        "--dataset",
        "mnist-sample",
        "--device",
        device,
        "--out",
        str(out),
        "--overwrite",
        "--no-progress",
        "--seed",
        str(seed),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    process_s = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    loop_s = max(r["elapsed_s"] for r in rows if "elapsed_s" in r)
    return {"process_s": process_s, "loop_s": loop_s, "run": str(out)}


def step_timing(
    precision: str, channels_last: bool, device: str, steps: int = 200, repeats: int = 5
) -> float:
    """Median seconds per cdcgan D+G step (batch 64, BCE)."""
    config = load_preset("cdcgan")
    torch.manual_seed(0)
    generator, discriminator = build_models(config.model, (1, 28, 28), 10)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    generator.to(device, memory_format=layout)
    discriminator.to(device, memory_format=layout)
    opt_g = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999), fused=True)
    opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999), fused=True)
    real = (torch.rand(64, 1, 28, 28, device=device) * 2 - 1).contiguous(memory_format=layout)
    labels = torch.randint(0, 10, (64,), device=device)
    latent = config.model.latent_dim
    ones, zeros = torch.ones(64, device=device), torch.zeros(64, device=device)

    def step() -> None:
        with torch.autocast(device, torch.bfloat16, enabled=precision == "bf16"):
            fake = generator(torch.randn(64, latent, device=device), labels)
            d_loss = F.binary_cross_entropy_with_logits(
                discriminator(real, labels).float(), ones
            ) + F.binary_cross_entropy_with_logits(
                discriminator(fake.detach(), labels).float(), zeros
            )
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        with torch.autocast(device, torch.bfloat16, enabled=precision == "bf16"):
            g_loss = F.binary_cross_entropy_with_logits(discriminator(fake, labels).float(), ones)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()

    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    for _ in range(20):  # warm-up: cuDNN autotuning, allocator
        step()
    timings = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        timings.append((time.perf_counter() - start) / steps)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n", type=int, default=10_000, help="samples per evaluation")
    parser.add_argument("--samples", help="save 2,000 balanced seed-cgan samples here (.npz)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a dry run)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.quick:
        parser.error("no CUDA device: this benchmark records GPU figures (--quick tries it on CPU)")
    torch.backends.cudnn.benchmark = True
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run)"
    WORK.mkdir(parents=True, exist_ok=True)
    result: dict = {"gpu": gpu, "torch": torch.__version__}

    full = full_run(args.seed, device) if not args.quick else {"process_s": 0.0, "loop_s": 0.0}
    result["seed_cgan_full"] = full
    print(f"seed-cgan 20k on {gpu}: {full['process_s']:.1f} s process, {full['loop_s']:.1f} s run")

    plan = ((100, 200), (50, 100)) if args.quick else ((1000, 20_000), (250, 5000))
    runs = {
        "seed-cgan": train("seed-cgan", *plan[0], args.seed, 2, device, WORK),
        "cdcgan": train("cdcgan", *plan[1], args.seed, 2, device, WORK),
    }
    evaluator = Evaluator.load("mnist-sample", device=device)
    cache: dict = {}
    bar = final_bar(runs["seed-cgan"], evaluator, args.n, cache, device)
    rows = [
        {
            "preset": p,
            "reference": "seed-cgan",
            **first_reaching(run, evaluator, bar, args.n, cache, device),
        }
        for p, run in runs.items()
    ]
    result["time_to_quality"] = {"bar": bar, "rows": rows}
    if args.samples:
        loaded = load_generator(runs["seed-cgan"], "latest", device)
        images, labels = sample_balanced(loaded.model, 2000, seed=5, device=device)
        np.savez(args.samples, images=to_uint8(images), labels=labels.numpy())

    steps = {}
    for precision in ("fp32", "bf16"):
        for channels_last in (False, True):
            name = f"{precision}, {'channels-last' if channels_last else 'contiguous'}"
            steps[name] = step_timing(precision, channels_last, device, 5 if args.quick else 200)
            print(f"cdcgan step {name}: {steps[name] * 1e3:.3f} ms")
    result["cdcgan_step_s"] = steps
    write(result, args)


def write(result: dict, args: argparse.Namespace) -> None:
    full = result["seed_cgan_full"]
    base = result["cdcgan_step_s"]["fp32, contiguous"]
    setting = (
        f"{args.n} samples per evaluation, seed {args.seed}; {result['gpu']}, "
        f"torch {result['torch']}"
    )
    lines = [
        f"GPU figures on {result['gpu']} (torch {result['torch']}).",
        "",
        "| seed-cgan, 20,000 iterations on CUDA | seconds |",
        "|---|---|",
        f"| the whole `gankit train` process | {full['process_s']:.1f} |",
        f"| the run's own elapsed_s (loop, grids, checkpoints) | {full['loop_s']:.1f} |",
        "",
        table(result["time_to_quality"]["rows"], result["time_to_quality"]["bar"], setting),
        "",
        "| cdcgan D+G step, batch 64 | ms per step | against fp32 contiguous |",
        "|---|---|---|",
    ]
    for name, seconds in result["cdcgan_step_s"].items():
        lines.append(f"| {name} | {seconds * 1e3:.3f} | {base / seconds:.2f}x |")
    for note in result.get("notes", []):
        lines += ["", note]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_gpu.md").write_text(text + "\n")
    (RESULTS / "bench_gpu.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
