"""The roofline of every preset's training step: how far each runs from this CPU's limit, and
where the rest of its time goes.

For each preset at its own batch size (and `cdcgan` under `--budget`, with its [on_budget]
recipe), one `train_iteration` (D's and G's steps, as the loop runs them) is measured:

- work: FLOPs of every matmul and convolution of one iteration, forward and backward, counted by
  `torch.utils.flop_counter.FlopCounterMode`, which reads each op's shapes as it is dispatched
  (the modules' own arithmetic, not an estimate); MACs = FLOPs / 2;
- the limit: this CPU's throughput on a large GEMM (`torch.mm`, 2048^3, fp32) and on a large
  convolution (batch 256, 64 -> 64 channels, 3x3, 28x28, channels-last), measured in the same
  run; the step's ideal time is its matmul FLOPs at the GEMM rate plus its convolution FLOPs at
  the convolution rate;
- achieved: the median milliseconds per iteration over 7 windows of 40 iterations after a
  warm-up; share = ideal time / measured time;
- where the rest goes: `torch.profiler` over 40 iterations, the self CPU time of every aten op
  grouped by family, and the overhead: the profiled wall time minus the ops' own time (Python,
  dispatch, autograd's bookkeeping).

  python benchmarks/bench_roofline.py [--presets seed-gan,seed-cgan,...] [--threads N]
Writes benchmarks/results/bench_roofline.{md,json} and docs/images/roofline.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from machine import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FIGURE = ROOT / "docs" / "images" / "roofline.png"
PRESETS = ("seed-gan", "seed-cgan", "mlp-cgan-fixed", "dcgan", "cdcgan", "cdcgan@budget", "wgan-gp")
TARGET_SHARE = 0.5  # the aim: each step at half its measured limit or better

# aten op name -> family, by the first rule that matches (the rest: "elementwise")
FAMILIES = (
    ("matmul", ("mm", "addmm", "bmm", "baddbmm", "addmv", "mv", "dot")),
    ("convolution", ("convolution", "_convolution", "mkldnn_convolution", "conv", "slow_conv")),
    ("optimizer, EMA", ("_fused_adam", "_foreach", "adam", "lerp")),
    ("batch norm", ("batch_norm", "native_batch_norm", "_batch_norm")),
    ("random", ("randint", "randn", "normal_", "uniform_", "bernoulli", "rand", "random_")),
    ("copy / layout", ("copy_", "_to_copy", "clone", "contiguous", "cat", "index", "embedding",
                       "gather", "stack", "to", "empty", "zeros", "ones", "fill_", "zero_")),
    ("reduction", ("sum", "mean", "max", "min", "norm", "amax", "argmax", "all", "any")),
)  # fmt: skip


def family(name: str) -> str:
    op = name.removeprefix("aten::")
    for label, prefixes in FAMILIES:
        if any(op.startswith(prefix) for prefix in prefixes):
            return label
    return "elementwise"


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_gflops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / median_seconds(lambda: torch.mm(a, b), 7) / 1e9


def conv_gflops() -> float:
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(256, 64, 28, 28).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        seconds = median_seconds(lambda: conv(x), 7)
    return 2 * 256 * 64 * 64 * 9 * 28 * 28 / seconds / 1e9


class GlobalOnly:
    """FlopCounterMode's module tracker, reduced to the one "Global" total it needs here: the
    real tracker's hooks refuse the double backward of a gradient penalty (WGAN-GP, R1)."""

    parents = {"Global"}

    def __enter__(self) -> GlobalOnly:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False


def counted_flops(step) -> dict:
    """{op: FLOPs} of one call of `step`, every op of forward and backward."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = GlobalOnly()
    with counter:
        step()
    return counter.get_flop_counts()["Global"]


def setup(name: str):
    """The preset's state on noise images of the dataset's shape, as the loop builds it."""
    from gankit.config import load_preset
    from gankit.data import ImageDataset
    from gankit.models import memory_format
    from gankit.training.state import build_state
    from gankit.training.step import StepOptions

    preset, _, variant = name.partition("@")
    config = load_preset(preset, budget=variant == "budget").with_overrides({"train.seed": 0})
    images = torch.rand(2048, 1, 28, 28) * 2 - 1
    labels = torch.arange(len(images)) % 10
    state = build_state(config, ImageDataset("noise", images, labels, 10), torch.device("cpu"))
    images = images.contiguous(memory_format=memory_format(config.model))
    return state, images, labels, config, StepOptions.from_config(config)


def measure_preset(name: str, gemm: float, conv: float) -> dict:
    from gankit.training.step import train_iteration

    state, images, labels, config, options = setup(name)

    def step() -> None:
        train_iteration(state, images, labels, config, options)

    flops = counted_flops(step)
    conv_flops = sum(v for k, v in flops.items() if "conv" in str(k))
    matmul_flops = sum(flops.values()) - conv_flops
    for _ in range(20):  # warm-up: allocator, kernels, caches
        step()
    windows = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(40):
            step()
        windows.append((time.perf_counter() - start) / 40)
    seconds = statistics.median(windows)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(40):
            step()
        profiled = (time.perf_counter() - start) / 40
    by_family: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            by_family[family(event.key)] += event.self_cpu_time_total / 1e6 / 40
    ideal = matmul_flops / (gemm * 1e9) + conv_flops / (conv * 1e9)
    return {
        "preset": name,
        "batch": config.train.batch_size,
        "mmacs": (matmul_flops + conv_flops) / 2 / 1e6,
        "matmul_share_of_work": matmul_flops / max(matmul_flops + conv_flops, 1),
        "ms": 1000 * seconds,
        "gflops": (matmul_flops + conv_flops) / seconds / 1e9,
        "ideal_ms": 1000 * ideal,
        "share": ideal / seconds,
        "profiled_ms": 1000 * profiled,
        "families_ms": {k: 1000 * v for k, v in sorted(by_family.items())},
        "overhead_ms": 1000 * max(profiled - sum(by_family.values()), 0.0),
    }


def render(rows: list[dict], machine: dict) -> str:
    families = sorted({f for r in rows for f in r["families_ms"]})
    lines = [
        f"Training step of each preset at its batch size on {machine['cpu']} "
        f"({machine['threads']} threads, torch {machine['torch']}); large GEMM "
        f"{machine['gemm_gflops']:.0f} GFLOP/s, large convolution {machine['conv_gflops']:.0f} "
        "GFLOP/s, measured in the same run. MACs counted by FlopCounterMode (forward and "
        "backward of every matmul and convolution); share = (matmul FLOPs at the GEMM rate + "
        "convolution FLOPs at the convolution rate) / measured time.",
        "",
        "| preset | batch | MMAC/it | ms/it | GFLOP/s | ideal ms | share of limit |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['batch']} | {r['mmacs']:.0f} | {r['ms']:.2f} | "
            f"{r['gflops']:.1f} | {r['ideal_ms']:.2f} | {100 * r['share']:.0f}% |"
        )
    lines += [
        "",
        "Where each step's time goes under torch.profiler (ms per iteration; overhead = wall time "
        "minus the ops' own time: Python, dispatch, autograd's bookkeeping):",
        "",
        "| preset | " + " | ".join(families) + " | overhead | profiled |",
        "|---|" + "---|" * (len(families) + 2),
    ]
    for r in rows:
        cells = " | ".join(f"{r['families_ms'].get(f, 0.0):.2f}" for f in families)
        lines.append(
            f"| {r['preset']} | {cells} | {r['overhead_ms']:.2f} | {r['profiled_ms']:.2f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], machine: dict) -> None:
    from matplotlib.figure import Figure

    families = sorted({f for r in rows for f in r["families_ms"]}) + ["overhead"]
    fig = Figure(figsize=(9, 0.55 * len(rows) + 2.4))
    ax = fig.subplots()
    names = [r["preset"] for r in rows][::-1]
    left = [0.0] * len(rows)
    colours = [
        "#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#937860", "#da8bc3",
        "#8c8c8c",
    ]  # fmt: skip
    for i, name in enumerate(families):
        values = [
            (r["overhead_ms"] if name == "overhead" else r["families_ms"].get(name, 0.0))
            for r in rows
        ][::-1]
        ax.barh(names, values, left=left, color=colours[i % len(colours)], label=name)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ideal = [r["ideal_ms"] for r in rows][::-1]
    ax.scatter(ideal, names, marker="|", s=400, color="black", zorder=3, label="ideal (limit)")
    ax.set_xlabel("ms per training iteration (profiled)")
    ax.set_title(f"Where each step's time goes: {machine['cpu']}, {machine['threads']} threads")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, ncol=5, loc="lower center")
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--render", action="store_true", help="redraw from the saved JSON")
    args = parser.parse_args()
    if args.render:
        saved = json.loads((RESULTS / "bench_roofline.json").read_text())
        plot(saved["rows"], saved["machine"])
        return
    torch.set_num_threads(args.threads)
    gemm, conv = gemm_gflops(), conv_gflops()
    machine = {
        "cpu": cpu_name(),
        "threads": args.threads,
        "torch": torch.__version__,
        "gemm_gflops": gemm,
        "conv_gflops": conv,
    }
    rows = []
    for name in args.presets.split(","):
        rows.append(measure_preset(name, gemm, conv))
        print(f"{name}: {rows[-1]['ms']:.2f} ms, {100 * rows[-1]['share']:.0f}% of its limit")
    text = render(rows, machine)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_roofline.md").write_text(text + "\n")
    (RESULTS / "bench_roofline.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n"
    )
    plot(rows, machine)


if __name__ == "__main__":
    main()
