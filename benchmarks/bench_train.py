"""Training speed: gankit's presets against the fixed reference loop, in one run.

Sections (each can be run alone; results of sections not run are kept from earlier runs):
  budget    cdcgan's budget recipe (each version's own [on_budget] tables) against gankit at
            --baseline REV, whole processes of --budget-iterations, alternated (REV runs in this
            environment: install what it needs, e.g. mlxtend for commits before 0.4).
  step      cdcgan's budget step in process (no start-up, no housekeeping): this checkout with
            and without one D forward over both batches, and gankit at --baseline REV, each in a
            process of its own, alternated, --repeats rounds of 8 windows of 30 iterations.
  headline  seed-cgan at batch 32 against the reference loop `ref_loop.py` (seed-cgan's algorithm
            written the way common PyTorch GAN examples are) as whole processes of --iterations
            iterations with grids and checkpoints off, alternated, median of --repeats pairs.
  sweep     in-loop ms/iteration of every preset and the reference at several batch sizes, with
            matmul FLOP/s against this machine's GEMM throughput measured in the same run.
  public    in-loop seed-cgan (batch 32 and 256) with nn.Dropout's bernoulli_ masks, with the
            opt-in fast masks, and (with --baseline REV) gankit at REV: what each part of a
            change of path costs.
  threads   torch.set_num_threads choices for an MLP and a conv preset.
  convs     the slow one-channel convolutions of the conv presets (G's last, D's first) against
            rewrites equal to them to float rounding, forward and backward, alternated.
  compile   --compile (torch.compile) against eager, after its warm-up, and the compile time.
  memory    peak resident memory of training on the full fashion-mnist.
  full      one whole 20,000-iteration seed-cgan run with the preset's own grids/checkpoints.
When a target is missed, a torch.profiler table of the step shows where the time goes.

  python benchmarks/bench_train.py [--sections headline,sweep,threads,compile,memory,full]
Writes benchmarks/results/bench_train.{md,json}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from machine import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_REFERENCE = ROOT / "benchmarks" / "ref_loop.py"
SECTIONS = (
    "headline",
    "budget",
    "step",
    "sweep",
    "public",
    "reuse",
    "threads",
    "convs",
    "compile",
    "memory",
    "full",
)
# The targets of the performance work, checked against the measurements: seed-cgan against the
# reference loop, cdcgan's budget recipe against --baseline, ...
TARGET_SPEEDUP, TARGET_BUDGET_SPEEDUP = 1.5, 1.3
TARGET_GEMM_SHARE, TARGET_FULL_S, TARGET_PEAK_MB = 0.6, 540, 1536
FAST_MASKS = ("--set", 'model.dropout_impl="fast"')  # the opt-in dropout masks
BATCH_OF = {"seed-gan": 32, "seed-cgan": 32, "dcgan": 64, "cdcgan": 64}


def gankit_run(
    preset: str,
    batch: int,
    iterations: int,
    log_every: int,
    *extra: str,
    dataset: str = "",
    source: Path | None = None,
) -> dict[str, float]:
    """A whole `gankit train` process with grids and checkpoints off (of the gankit in `source`,
    a checkout's src/ folder, when given; else of this one).

    ms_loop is the median over the logged windows after the first (warm-up, compilation)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [
            sys.executable,
            "-m",
            "gankit",
            "train",
            "--preset",
            preset,
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
            str(log_every),
            "--sample-every",
            str(10 * iterations),
            "--checkpoint-every",
            str(10 * iterations),
            *(["--dataset", dataset] if dataset else []),
            *extra,
        ]
        seconds, peak, _ = run_process(command, source)
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    windows = [1000 / r["it_per_s"] for r in rows if "it_per_s" in r]
    steady = windows[1:] or windows
    return {
        "ms_process": 1000 * seconds / iterations,
        "ms_loop": statistics.median(steady),
        "ms_loop_all": statistics.mean(windows),  # warm-up included, as the reference reports
        "first_window_s": windows[0] * log_every / 1000,
        "peak_mb": peak,
    }


def reference_run(script: Path, batch: int, iterations: int) -> dict[str, float]:
    command = [sys.executable, str(script), "--iterations", str(iterations)]
    seconds, peak, stdout = run_process([*command, "--batch-size", str(batch)])
    ms_loop = float(stdout.strip().splitlines()[-1].split("=")[1])
    return {"ms_process": 1000 * seconds / iterations, "ms_loop": ms_loop, "peak_mb": peak}


# Starts the measured command from a fresh, small process. Linux's ru_maxrss of a child counts
# the memory it inherited at fork (this script holds hundreds of MB once torch has run here), so
# a child forked from this process would report at least this process's peak.
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    json.dump([seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)], f)
"""


def run_process(command: list[str], source: Path | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one child process, started by LAUNCHER, with
    `source` first on its PYTHONPATH when given."""
    env = {**os.environ, "PYTHONPATH": str(source)} if source else None
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "usage.json"
        launched = [sys.executable, "-c", LAUNCHER, str(report), *command]
        done = subprocess.run(launched, capture_output=True, text=True, env=env)
        seconds, peak_mb, code = json.loads(report.read_text())
    if code:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds, peak_mb, done.stdout


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


def one_iteration_setup(preset: str, batch: int):
    from gankit.config import load_preset
    from gankit.data import ImageDataset
    from gankit.training.state import build_state
    from gankit.training.step import StepOptions

    config = load_preset(preset).with_overrides({"train.seed": 0, "train.batch_size": batch})
    images = torch.rand(max(batch, 64), 1, 28, 28) * 2 - 1
    labels = torch.arange(len(images)) % 10
    state = build_state(config, ImageDataset("noise", images, labels, 10), torch.device("cpu"))
    return state, images, labels, config, StepOptions.from_config(config)


def matmul_flops_per_iteration(preset: str, batch: int) -> float:
    """FLOPs of one training iteration, counted by PyTorch's FlopCounterMode."""
    from gankit.training.step import train_iteration

    state, images, labels, config, options = one_iteration_setup(preset, batch)
    with FlopCounterMode(display=False) as counter:
        train_iteration(state, images, labels, config, options)
    return counter.get_total_flops()


def profile_table(preset: str, batch: int, iterations: int = 30, rows: int = 12) -> str:
    """torch.profiler's table of the training step (self CPU time), after a warm-up."""
    from torch.profiler import ProfilerActivity, profile

    from gankit.training.step import train_iteration

    torch.set_num_threads(2)
    state, images, labels, config, options = one_iteration_setup(preset, batch)
    for _ in range(10):
        train_iteration(state, images, labels, config, options)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iterations):
            train_iteration(state, images, labels, config, options)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    return f"{preset}, batch {batch}, {iterations} iterations\n```\n{table}\n```"


# --- sections --------------------------------------------------------------------------------


def git_commit() -> str:
    """The short commit of the measured gankit (this checkout), or "unknown"."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


@contextlib.contextmanager
def baseline_checkout(revision: str | None) -> Iterator[Path | None]:
    """A detached git worktree of `revision` in a temporary folder, removed afterwards; yields
    its src/ (for PYTHONPATH), or None without a revision."""
    if not revision:
        yield None
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "baseline"
        subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "worktree",
                "add",
                "--detach",
                "--force",
                str(folder),
                revision,
            ],
            check=True,
            capture_output=True,
        )
        try:
            yield folder / "src"
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False
            )


def headline(args: argparse.Namespace) -> dict:
    """seed-cgan against the reference loop (and against gankit at --baseline REV, when given),
    as whole processes run in turn, --repeats rounds."""
    samples: dict[str, list[dict[str, float]]] = {
        "seed-cgan": [],
        "reference loop": [],
        "seed-cgan, fast masks": [],
    }
    if args.baseline:
        samples[f"gankit {args.baseline}"] = []
    with baseline_checkout(args.baseline) as baseline:
        for repeat in range(args.repeats):
            log_every = args.iterations // 10
            samples["seed-cgan"].append(gankit_run("seed-cgan", 32, args.iterations, log_every))
            samples["reference loop"].append(reference_run(args.reference, 32, args.iterations))
            samples["seed-cgan, fast masks"].append(
                gankit_run("seed-cgan", 32, args.iterations, log_every, *FAST_MASKS)
            )
            if baseline is not None:
                samples[f"gankit {args.baseline}"].append(
                    gankit_run("seed-cgan", 32, args.iterations, log_every, source=baseline)
                )
            print(f"headline round {repeat + 1}/{args.repeats} done", file=sys.stderr)
    medians = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for name, runs in samples.items()
    }
    ratios = [
        ref["ms_process"] / mine["ms_process"]
        for mine, ref in zip(samples["seed-cgan"], samples["reference loop"], strict=True)
    ]
    fast_ratios = [
        ref["ms_process"] / mine["ms_process"]
        for mine, ref in zip(
            samples["seed-cgan, fast masks"], samples["reference loop"], strict=True
        )
    ]
    result = {
        "iterations": args.iterations,
        "repeats": args.repeats,
        "medians": medians,
        "pair_ratios": ratios,
        "speedup": statistics.median(ratios),
        "fast_mask_ratios": fast_ratios,
        "fast_mask_speedup": statistics.median(fast_ratios),
    }
    if args.baseline:
        result["baseline"] = args.baseline
        result["baseline_ratios"] = [
            old["ms_process"] / new["ms_process"]
            for new, old in zip(
                samples["seed-cgan"], samples[f"gankit {args.baseline}"], strict=True
            )
        ]
    return result


# One process of the step section: cdcgan's budget step on noise images, built with the API that
# both this checkout and older revisions have (train_iteration moved from loop.py to step.py).
STEP_HARNESS = """
import json, statistics, sys, time
import torch
from gankit.config import load_preset
from gankit.data import ImageDataset
from gankit.models import memory_format
from gankit.training.state import build_state
from gankit.training.step import StepOptions
try:
    from gankit.training.step import train_iteration
except ImportError:
    from gankit.training.loop import train_iteration
config = load_preset("cdcgan", budget=True).with_overrides(json.loads(sys.argv[1]))
torch.set_num_threads(2)
torch.manual_seed(0)
images = torch.rand(2048, 1, 28, 28) * 2 - 1
labels = torch.arange(len(images)) % 10
state = build_state(config, ImageDataset("noise", images, labels, 10), torch.device("cpu"))
images = images.contiguous(memory_format=memory_format(config.model))
options = StepOptions.from_config(config)
for _ in range(40):
    train_iteration(state, images, labels, config, options)
windows = []
for _ in range(8):
    start = time.perf_counter()
    for _ in range(30):
        train_iteration(state, images, labels, config, options)
    windows.append(1000 * (time.perf_counter() - start) / 30)
print(json.dumps(statistics.median(windows)))
"""


def step_process(overrides: dict, source: Path | None = None) -> float:
    """Median ms per iteration of cdcgan's budget step in one STEP_HARNESS process."""
    command = [sys.executable, "-c", STEP_HARNESS, json.dumps({"train.seed": 0, **overrides})]
    env = {**os.environ, "PYTHONPATH": str(source or ROOT / "src")}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"step harness failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])


def step(args: argparse.Namespace) -> dict:
    """cdcgan's budget step in process: this checkout (its recipe, then with
    train.joint_d_forward) and gankit at --baseline REV, alternated, --repeats rounds."""
    if not args.baseline:
        raise SystemExit("the step section compares with --baseline REV; give one")
    name = f"gankit {args.baseline}"
    overrides = {name: {}, "gankit": {}, "gankit, one D forward": {"train.joint_d_forward": True}}
    samples: dict[str, list[float]] = {key: [] for key in overrides}
    order = list(overrides)
    with baseline_checkout(args.baseline) as baseline:
        for repeat in range(args.repeats):
            # each round starts with the next version, so that none always runs first
            for key in order[repeat % 3 :] + order[: repeat % 3]:
                source = baseline if key == name else None
                samples[key].append(step_process(overrides[key], source))
            print(f"step round {repeat + 1}/{args.repeats} done", file=sys.stderr)
    ratios = {
        k: [old / new for new, old in zip(v, samples[name], strict=True)]
        for k, v in samples.items()
        if k != name
    }
    return {
        "repeats": args.repeats,
        "baseline": args.baseline,
        "samples": samples,
        "medians": {k: statistics.median(v) for k, v in samples.items()},
        "ratios": ratios,
        "speedups": {k: statistics.median(v) for k, v in ratios.items()},
    }


def budget_recipe(preset_file: str) -> list[str]:
    """`--set KEY=VALUE` arguments of a preset file's [on_budget] tables."""
    tables = tomllib.loads(preset_file).get("on_budget", {})
    return [
        argument
        for section, values in sorted(tables.items())
        for key, value in sorted(values.items())
        for argument in ("--set", f"{section}.{key}={json.dumps(value)}")
    ]


def budget(args: argparse.Namespace) -> dict:
    """cdcgan's budget recipe (its [on_budget] tables, at --budget-iterations) here and at
    --baseline REV (that revision's own recipe), as whole processes in turn, --repeats rounds."""
    if not args.baseline:
        raise SystemExit("the budget section compares with --baseline REV; give one")
    preset = Path("src/gankit/presets/cdcgan.toml")
    ours = budget_recipe((ROOT / preset).read_text())
    shown = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{args.baseline}:{preset}"],
        check=True,
        capture_output=True,
        text=True,
    )
    theirs = budget_recipe(shown.stdout)
    iterations, name = args.budget_iterations, f"gankit {args.baseline}"
    samples: dict[str, list[dict[str, float]]] = {"gankit": [], name: []}
    with baseline_checkout(args.baseline) as baseline:
        for repeat in range(args.repeats):
            log_every = iterations // 10
            samples["gankit"].append(gankit_run("cdcgan", 32, iterations, log_every, *ours))
            samples[name].append(
                gankit_run("cdcgan", 32, iterations, log_every, *theirs, source=baseline)
            )
            print(f"budget round {repeat + 1}/{args.repeats} done", file=sys.stderr)
    ratios = [
        old["ms_process"] / new["ms_process"]
        for new, old in zip(samples["gankit"], samples[name], strict=True)
    ]
    return {
        "iterations": iterations,
        "repeats": args.repeats,
        "baseline": args.baseline,
        "recipes": {"gankit": ours, name: theirs},
        "medians": {
            k: {f: statistics.median(r[f] for r in runs) for f in runs[0]}
            for k, runs in samples.items()
        },
        "ratios": ratios,
        "speedup": statistics.median(ratios),
    }


def sweep(args: argparse.Namespace, gemm: float) -> dict:
    """Per batch size, --sweep-repeats rounds over every config in turn; medians per config."""
    rows = []
    for batch in args.batch_sizes:
        configs = [*args.presets, "reference loop"]
        runs: dict[str, list[dict[str, float]]] = {preset: [] for preset in configs}
        for _ in range(args.sweep_repeats):
            for preset in configs:
                if preset == "reference loop":
                    result = reference_run(args.reference, batch, args.sweep_iterations)
                else:
                    result = gankit_run(
                        preset, batch, args.sweep_iterations, args.sweep_iterations // 4
                    )
                runs[preset].append(result)
        for preset in configs:
            result = {k: statistics.median(r[k] for r in runs[preset]) for k in runs[preset][0]}
            flops = matmul_flops_per_iteration(
                "seed-cgan" if preset == "reference loop" else preset, batch
            )
            rows.append(
                {
                    "config": preset,
                    "batch": batch,
                    **result,
                    "gflop_per_iter": flops / 1e9,
                    "gflops_achieved": flops / (result["ms_loop"] / 1000) / 1e9,
                }
            )
            print(f"sweep {preset} batch {batch}: {result['ms_loop']:.1f} ms", file=sys.stderr)
    for row in rows:
        ref = next(
            r for r in rows if r["config"] == "reference loop" and r["batch"] == row["batch"]
        )
        row["vs_reference_loop"] = (  # both over all iterations: the reference reports that
            ref["ms_loop"] / row["ms_loop_all"] if row["config"].startswith("seed-cgan") else None
        )
    gemm = max(gemm, gemm_gflops())  # the better of before and after: noise only lowers it
    for row in rows:
        row["gemm_share"] = row["gflops_achieved"] / gemm
    return {
        "iterations": args.sweep_iterations,
        "repeats": args.sweep_repeats,
        "gemm_gflops": gemm,
        "rows": rows,
    }


def public(args: argparse.Namespace) -> dict:
    """seed-cgan's in-loop time with each dropout implementation (and at --baseline REV), in
    alternated processes of --sweep-iterations * 3 iterations, median of --sweep-repeats."""
    iterations = 3 * args.sweep_iterations
    rows = []
    with baseline_checkout(args.baseline) as baseline:
        configs = [
            ("dropout torch (bernoulli_)", (), None),
            ("dropout fast (16-bit draws)", ("--set", "model.dropout_impl=fast"), None),
        ]
        if baseline is not None:
            configs.append((f"gankit at {args.baseline}", (), baseline))
        for batch in (32, 256):
            runs: dict[str, list[float]] = {name: [] for name, _, _ in configs}
            for _ in range(args.sweep_repeats):
                for name, extra, source in configs:
                    result = gankit_run(
                        "seed-cgan", batch, iterations, iterations // 6, *extra, source=source
                    )
                    runs[name].append(result["ms_loop"])
            rows += [
                {"config": name, "batch": batch, "ms_loop": statistics.median(times)}
                for name, times in runs.items()
            ]
            print(f"public batch {batch} done", file=sys.stderr)
    return {"iterations": iterations, "repeats": args.sweep_repeats, "rows": rows}


def reuse(args: argparse.Namespace) -> dict:
    """cdcgan's in-loop time with two G forwards per iteration (the preset) and with one
    (`train.reuse_fakes`, what `--budget` uses), alternated processes of --sweep-iterations * 3
    iterations, median of --sweep-repeats; the speed-up is the median of the rounds' ratios."""
    iterations = 3 * args.sweep_iterations
    rows = []
    for batch in (32, 64):
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.sweep_repeats):
            for flag in (False, True):
                result = gankit_run(
                    "cdcgan",
                    batch,
                    iterations,
                    iterations // 6,
                    "--set",
                    f"train.reuse_fakes={str(flag).lower()}",
                )
                times[flag].append(result["ms_loop"])
        ratios = [a / b for a, b in zip(times[False], times[True], strict=True)]
        rows.append(
            {
                "batch": batch,
                "two": statistics.median(times[False]),
                "one": statistics.median(times[True]),
                "ratios": ratios,
            }
        )
        print(f"reuse batch {batch} done", file=sys.stderr)
    return {"iterations": iterations, "repeats": args.sweep_repeats, "rows": rows}


def threads(args: argparse.Namespace) -> dict:
    rows = []
    for preset in ("seed-cgan", "cdcgan"):
        for count in (1, 2):
            result = gankit_run(
                preset,
                BATCH_OF[preset],
                args.sweep_iterations,
                args.sweep_iterations // 4,
                "--threads",
                str(count),
            )
            rows.append({"config": preset, "threads": count, **result})
    return {"rows": rows}


def one_channel_convs() -> dict[str, tuple[list[torch.Tensor], torch.Tensor, dict]]:
    """G's last convolution (16 -> 1, 3x3, 28x28) and D's first (1 -> 16, 4x4, stride 2) at
    batch 32, channels-last, as the library runs them and as rewrites with the same result:
    name -> (the tensors that get gradients, the output's gradient, variant -> forward)."""
    torch.manual_seed(0)
    g_conv = nn.Conv2d(16, 1, 3, 1, 1).to(memory_format=torch.channels_last)
    x = torch.randn(32, 16, 28, 28).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    weight, bias = g_conv.weight, g_conv.bias

    def depthwise() -> torch.Tensor:  # each channel's taps on its own, then summed over channels
        taps = F.conv2d(x, weight.transpose(0, 1), None, 1, 1, 1, 16)
        return taps.sum(1, keepdim=True) + bias.view(1, 1, 1, 1)

    d_conv = nn.Conv2d(1, 16, 4, 2, 1).to(memory_format=torch.channels_last)
    data = torch.randn(32, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    fakes = data.clone().requires_grad_(True)  # G's step: the input gradient too

    def unfolded(images: torch.Tensor) -> torch.Tensor:  # im2col (16 taps) and one GEMM
        cols = F.unfold(images, 4, padding=1, stride=2).transpose(1, 2).reshape(-1, 16)
        out = torch.addmm(d_conv.bias, cols, d_conv.weight.view(16, 16).t())
        return out.view(32, 14, 14, 16).permute(0, 3, 1, 2)  # channels-last

    d_grad = torch.randn(32, 16, 14, 14).contiguous(memory_format=torch.channels_last)
    d_params = [d_conv.weight, d_conv.bias]
    return {
        "G's last (16 -> 1, 3x3)": (
            [x, weight, bias],
            torch.randn(32, 1, 28, 28),
            {
                "library, channels-last": lambda: g_conv(x),
                "library, NCHW": lambda: F.conv2d(x.contiguous(), weight.contiguous(), bias, 1, 1),
                "depthwise + channel sum": depthwise,
            },
        ),
        "D's first (1 -> 16, 4x4 s2), D's steps": (
            d_params,
            d_grad,
            {"library": lambda: d_conv(data), "unfold + GEMM": lambda: unfolded(data)},
        ),
        "D's first, G's step (input gradient)": (
            [fakes, *d_params],
            d_grad,
            {"library": lambda: d_conv(fakes), "unfold + GEMM": lambda: unfolded(fakes)},
        ),
    }


def convs(args: argparse.Namespace) -> dict:
    """Median ms of one forward and backward of each variant (7 alternated windows of 30)."""
    rows = []
    for layer, (tensors, grad, variants) in one_channel_convs().items():
        runs = {
            name: lambda f=forward, t=tensors, g=grad: torch.autograd.grad(f(), t, g)
            for name, forward in variants.items()
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for run in runs.values():  # warm-up
            for _ in range(10):
                run()
        for _ in range(7):
            for name, run in runs.items():
                start = time.perf_counter()
                for _ in range(30):
                    run()
                times[name].append(1000 * (time.perf_counter() - start) / 30)
        rows += [
            {"layer": layer, "variant": name, "ms": statistics.median(t)}
            for name, t in times.items()
        ]
    return {"rows": rows}


def compile_section(args: argparse.Namespace) -> dict:
    rows = []
    iterations = 2 * args.sweep_iterations
    for preset in ("seed-cgan", "cdcgan"):
        for flag in ((), ("--compile",)):
            result = gankit_run(preset, BATCH_OF[preset], iterations, iterations // 8, *flag)
            rows.append({"config": preset, "compile": bool(flag), **result})
    return {"iterations": iterations, "rows": rows}


def memory(args: argparse.Namespace) -> dict:
    from gankit.data import DataError, load_dataset

    try:  # offline, fashion-mnist comes from Debian's dataset-fashion-mnist package
        load_dataset("fashion-mnist", download=False)
    except DataError as error:
        print(
            f"memory: skipped, fashion-mnist is not available ({error}); "
            "apt-get install dataset-fashion-mnist",
            file=sys.stderr,
        )
        return {"rows": [], "skipped": "fashion-mnist not available"}
    rows = []
    for preset in ("seed-cgan", "cdcgan"):
        result = gankit_run(preset, BATCH_OF[preset], 200, 50, dataset="fashion-mnist")
        rows.append({"config": preset, "dataset": "fashion-mnist", **result})
    return {"rows": rows}


def full(args: argparse.Namespace) -> dict:
    """The preset as it is, seed 1; its checkpoints are kept (deleting them or not costs the
    same) so that bench_time_to_quality can score them with `--existing seed-cgan=RUN`."""
    out = ROOT / "benchmarks" / "_work" / "full-seed-cgan-s1"
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
        "1",
        "--set",
        "schedule.keep_checkpoints=1000",
    ]
    seconds, peak, _ = run_process(command)
    return {"seconds": seconds, "peak_mb": peak, "run": str(out.relative_to(ROOT))}


# --- report ----------------------------------------------------------------------------------


def render(results: dict) -> str:
    machine = results["machine"]
    lines = [f"Training speed on {machine} (2 threads unless stated).", ""]
    if h := results.get("headline"):
        mine, ref = h["medians"]["seed-cgan"], h["medians"]["reference loop"]
        ratios = ", ".join(f"{r:.2f}" for r in h["pair_ratios"])
        lines += [
            f"**seed-cgan vs the reference loop, batch 32**: whole processes of {h['iterations']} "
            f"iterations (grids and checkpoints off), alternated, median of {h['repeats']} pairs.",
            "",
            "| | s/process | ms/iter in the loop | start-up + exit s | peak MB |",
            "|---|---|---|---|---|",
        ]
        named = [("gankit seed-cgan", mine), ("reference loop", ref)]
        if "seed-cgan, fast masks" in h["medians"]:
            named.append(
                ("gankit seed-cgan, opt-in fast masks", h["medians"]["seed-cgan, fast masks"])
            )
        if base := h.get("baseline"):
            named.append((f"gankit seed-cgan at {base}", h["medians"][f"gankit {base}"]))
        for name, m in named:
            process_s = m["ms_process"] * h["iterations"] / 1000
            loop = m.get("ms_loop_all", m["ms_loop"])  # both: mean over all iterations
            overhead = process_s - loop * h["iterations"] / 1000
            lines.append(
                f"| {name} | {process_s:.1f} | {loop:.2f} | {overhead:.1f} | {m['peak_mb']:.0f} |"
            )
        lines += [
            "",
            f"Speed-up (median of the pairs' ratios): **{h['speedup']:.2f}x** "
            f"(pairs: {ratios}); target {TARGET_SPEEDUP}x.",
            "",
        ]
        if "fast_mask_speedup" in h:
            fast = ", ".join(f"{r:.2f}" for r in h["fast_mask_ratios"])
            lines += [
                f"With the opt-in fast dropout masks (`{' '.join(FAST_MASKS)}`): "
                f"**{h['fast_mask_speedup']:.2f}x** (pairs: {fast}).",
                "",
            ]
        if base := h.get("baseline"):
            old = ", ".join(f"{r:.2f}" for r in h["baseline_ratios"])
            lines += [
                f"Against gankit at {base} (same rounds): this version runs "
                f"{statistics.median(h['baseline_ratios']):.2f}x its speed "
                f"(rounds: {old}; below 1 is slower).",
                "",
            ]
    if b := results.get("budget"):
        name = f"gankit {b['baseline']}"
        ratios = ", ".join(f"{r:.2f}" for r in b["ratios"])
        lines += [
            f"**cdcgan's budget recipe against gankit at {b['baseline']}**, batch 32: whole "
            f"processes of {b['iterations']} iterations (grids and checkpoints off), each "
            f"version with its own [on_budget] tables, alternated, median of {b['repeats']} "
            "rounds.",
            "",
            "| | s/process | ms/iter in the loop | it/s in the loop | peak MB |",
            "|---|---|---|---|---|",
        ]
        for label, key in (("gankit", "gankit"), (f"gankit at {b['baseline']}", name)):
            m = b["medians"][key]
            lines.append(
                f"| {label} | {m['ms_process'] * b['iterations'] / 1000:.1f} | "
                f"{m['ms_loop']:.2f} | {1000 / m['ms_loop']:.1f} | {m['peak_mb']:.0f} |"
            )
        lines += [
            "",
            f"Speed-up (median of the rounds' ratios): **{b['speedup']:.2f}x** (rounds: "
            f"{ratios}); target {TARGET_BUDGET_SPEEDUP}x. Recipe here: "
            f"`{' '.join(b['recipes']['gankit'])}`.",
            "",
        ]
    if st := results.get("step"):
        name = f"gankit {st['baseline']}"
        lines += [
            f"**cdcgan's budget step in process against gankit at {st['baseline']}** (batch 32, "
            "noise images; no start-up, grids, logging or checkpoints: each process times 8 "
            "windows of 30 iterations after 40 of warm-up; processes alternated, each round "
            "starting with the next version, "
            f"{st['repeats']} rounds).",
            "",
            "| | ms/iter (median of rounds) | speed-up (median of rounds) | rounds |",
            "|---|---|---|---|",
        ]
        for key in st["samples"]:
            rounds = st["ratios"].get(key)
            lines.append(
                f"| {key} | {st['medians'][key]:.2f} | "
                + (f"{st['speedups'][key]:.2f}x | " if rounds else "1.00x | ")
                + (", ".join(f"{r:.2f}" for r in rounds) if rounds else "-")
                + " |"
            )
        lines.append("")
    if s := results.get("sweep"):
        gemm = s["gemm_gflops"]
        lines += [
            f"**Presets x batch size** ({s['iterations']} iterations per process, median of "
            f"{s.get('repeats', 1)} processes alternated; in-loop time after the first window "
            "(the reference reports its mean over all iterations, so 'vs reference loop' divides "
            "it by gankit's mean over all iterations); this machine's large fp32 GEMM: "
            f"{gemm:.0f} GFLOP/s).",
            "",
            "| config | batch | ms/iter | images/s | vs reference loop | GFLOP/iter | "
            "matmul GFLOP/s (% of GEMM) | peak MB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in s["rows"]:
            vs = f"{r['vs_reference_loop']:.2f}x" if r["vs_reference_loop"] else "-"
            lines.append(
                f"| {r['config']} | {r['batch']} | {r['ms_loop']:.1f} | "
                f"{1000 * r['batch'] / r['ms_loop']:.0f} | {vs} | {r['gflop_per_iter']:.3f} | "
                f"{r['gflops_achieved']:.0f} ({100 * r['gflops_achieved'] / gemm:.0f}%) | "
                f"{r['peak_mb']:.0f} |"
            )
        lines.append("")
    if p := results.get("public"):
        lines += [
            f"**What the public path costs** (seed-cgan in the loop, {p['iterations']} iterations "
            f"per process, median of {p['repeats']} alternated processes):",
            "",
            "| config | batch | ms/iter |",
            "|---|---|---|",
        ]
        lines += [f"| {r['config']} | {r['batch']} | {r['ms_loop']:.2f} |" for r in p["rows"]]
        lines.append("")
    if u := results.get("reuse"):
        lines += [
            f"**One G forward per iteration** (`train.reuse_fakes`, which cdcgan uses under "
            f"`--budget`: G's step backpropagates through the fakes D's step was given; cdcgan in "
            f"the loop, {u['iterations']} iterations per process, median of {u['repeats']} "
            f"alternated rounds):",
            "",
            "| batch | two G forwards ms/iter | one G forward ms/iter | speed-up (rounds) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['batch']} | {r['two']:.1f} | {r['one']:.1f} | "
            f"{statistics.median(r['ratios']):.2f}x ({', '.join(f'{x:.2f}' for x in r['ratios'])})"
            f" |"
            for r in u["rows"]
        ]
        lines.append("")
    if t := results.get("threads"):
        lines += [
            "**Threads** (torch.set_num_threads; gankit keeps PyTorch's default, one per core):",
            "",
            "| config | threads | ms/iter |",
            "|---|---|---|",
        ]
        lines += [f"| {r['config']} | {r['threads']} | {r['ms_loop']:.1f} |" for r in t["rows"]]
        lines.append("")
    if cv := results.get("convs"):
        lines += [
            "**The one-channel convolutions** (batch 32; one forward and backward, median of 7 "
            "alternated windows of 30; each rewrite equals the library's result to float "
            "rounding, tests/test_bench_train.py):",
            "",
            "| convolution | variant | ms |",
            "|---|---|---|",
        ]
        lines += [f"| {r['layer']} | {r['variant']} | {r['ms']:.2f} |" for r in cv["rows"]]
        lines.append("")
    if c := results.get("compile"):
        lines += [
            f"**torch.compile on this CPU** ({c['iterations']} iterations; ms/iter after the "
            "first window, which holds the compilation):",
            "",
            "| config | compile | ms/iter | first window s |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['config']} | {'yes' if r['compile'] else 'no'} | {r['ms_loop']:.1f} | "
            f"{r['first_window_s']:.1f} |"
            for r in c["rows"]
        ]
        lines.append("")
    if (m := results.get("memory")) and m["rows"]:
        lines += [
            "**Peak resident memory, training on the full fashion-mnist** (60,000 images "
            "held as one tensor):",
            "",
            "| config | peak MB |",
            "|---|---|",
        ]
        lines += [f"| {r['config']} | {r['peak_mb']:.0f} |" for r in m["rows"]]
        lines.append("")
    if f := results.get("full"):
        lines += [
            f"**Full seed-cgan run** (20,000 iterations, the preset's grids every 200 and "
            f"checkpoints every 1,000): {f['seconds']:.0f} s = {f['seconds'] / 60:.1f} min "
            f"(target under 9 min).",
            "",
        ]
    lines += targets(results)
    commits = {
        name: results[name].get("commit", "an earlier commit")
        for name in SECTIONS
        if isinstance(results.get(name), dict)
    }
    lines += ["Measured at: " + ", ".join(f"{n} {c}" for n, c in commits.items()) + "."]
    return "\n".join(lines).rstrip() + "\n"


def checks(results: dict) -> list[tuple[str, bool, str, tuple[str, int] | None]]:
    """(target, met, measured, (preset, batch) to profile when missed) for each measured one."""
    found = []
    if h := results.get("headline"):
        ok = h["speedup"] >= TARGET_SPEEDUP
        found.append(
            (
                f"seed-cgan >= {TARGET_SPEEDUP}x the reference (whole processes)",
                ok,
                f"{h['speedup']:.2f}x",
                ("seed-cgan", 32),
            )
        )
    if b := results.get("budget"):
        found.append(
            (
                f"cdcgan's budget recipe >= {TARGET_BUDGET_SPEEDUP}x gankit at {b['baseline']}",
                b["speedup"] >= TARGET_BUDGET_SPEEDUP,
                f"{b['speedup']:.2f}x",
                None,
            )
        )
    if s := results.get("sweep"):
        row = next((r for r in s["rows"] if r["config"] == "seed-cgan" and r["batch"] == 256), None)
        if row:
            share = row["gflops_achieved"] / s["gemm_gflops"]
            ok = share >= TARGET_GEMM_SHARE
            found.append(
                (
                    "seed-cgan at batch 256: matmul FLOP/s >= 60% of GEMM",
                    ok,
                    f"{100 * share:.0f}%",
                    ("seed-cgan", 256),
                )
            )
    if (m := results.get("memory")) and m["rows"]:
        peak = max(r["peak_mb"] for r in m["rows"])
        found.append(
            ("fashion-mnist training peak < 1.5 GB", peak < TARGET_PEAK_MB, f"{peak:.0f} MB", None)
        )
    if f := results.get("full"):
        found.append(
            (
                "20,000-iteration seed-cgan < 9 min",
                f["seconds"] < TARGET_FULL_S,
                f"{f['seconds'] / 60:.1f} min",
                ("seed-cgan", 32),
            )
        )
    return found


def targets(results: dict) -> list[str]:
    """The targets, met or not; a missed one comes with the profile that explains it."""
    lines = ["**Targets**", "", "| target | met | measured |", "|---|---|---|"]
    lines += [
        f"| {name} | {'yes' if ok else 'no'} | {value} |" for name, ok, value, _ in checks(results)
    ]
    lines.append("")
    for text in results.get("profiles", []):
        title, table = text.split("\n", 1)
        lines += [
            f"<details><summary>Where the time goes (a target was missed): {title}</summary>",
            "",
            table,
            "",
            "</details>",
            "",
        ]
    return lines


def missed_profiles(results: dict) -> list[str]:
    wanted = {where for _, ok, _, where in checks(results) if not ok and where}
    return [profile_table(*where) for where in sorted(wanted)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS[:-1]))
    parser.add_argument("--iterations", type=int, default=3000, help="per headline process")
    parser.add_argument("--repeats", type=int, default=5, help="headline pairs")
    parser.add_argument(
        "--budget-iterations", type=int, default=2000, help="per budget-section process"
    )
    parser.add_argument("--sweep-iterations", type=int, default=200)
    parser.add_argument("--sweep-repeats", type=int, default=3, help="processes per config")
    parser.add_argument("--batch-sizes", default="32,64,256")
    parser.add_argument("--presets", default="seed-gan,seed-cgan,dcgan,cdcgan")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument(
        "--baseline",
        default="",
        help="headline: also time gankit at this git revision (a temporary worktree), in the "
        "same rounds; budget and step: the revision they compare with (skipped without one)",
    )
    args = parser.parse_args()
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.presets = args.presets.split(",")
    sections = [x for x in args.sections.split(",") if x]  # none: re-render the saved results
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    if not args.reference.is_file() and {"headline", "sweep"} & set(sections):
        parser.error(f"reference loop not found: {args.reference} (pass --reference PATH)")
    path = RESULTS / "bench_train.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results = {k: v for k, v in results.items() if k in SECTIONS}  # older layouts are dropped
    torch.set_num_threads(2)
    gemm = gemm_gflops()
    results["machine"] = (
        f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, torch {torch.__version__}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    for section in sections:
        if section in ("budget", "step") and not args.baseline:  # `make bench` names none
            print(f"{section}: skipped (it compares with --baseline REV)", file=sys.stderr)
            continue
        if section == "headline":
            results["headline"] = headline(args)
        elif section == "sweep":
            results["sweep"] = sweep(args, gemm)
        elif section == "compile":
            results["compile"] = compile_section(args)
        else:
            results[section] = globals()[section](args)
        results[section]["commit"] = git_commit()
        path.write_text(json.dumps(results, indent=1))  # each section is kept as soon as done
    results["profiles"] = missed_profiles(results)
    text = render(results)
    print(text)
    (RESULTS / "bench_train.md").write_text(text)
    path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
