"""Mode coverage on Stacked MNIST (1,000 modes) beside the published table.

Every gankit row runs as a user runs it, one job at a time with PyTorch's default threads (a
budget is wall-clock seconds on this machine, so nothing else may run beside it):

    gankit train --preset P --dataset stacked-mnist --budget B --seed S --out RUN [--set K=V]
    gankit.evaluate(RUN)       26,000 samples (the VEEGAN/PacGAN protocol): modes covered, KL
                               to uniform, each channel's copy rate; the same for 26,000 real
                               triples (seed 1), and the finite-sample floor of the KL

Jobs, written NAME@BUDGET[,BUDGET...]:SEED[,SEED...] and joined with `+`:
  seed-gan      the reference MLP GAN (its G draws 3 x 784 values)
  dcgan-before  dcgan's recipe before its [on_budget] table: `--budget B` with each of that
                table's choices set back to the preset's own value
  dcgan         `gankit train --preset dcgan --dataset stacked-mnist --budget B`, the command
                users run
  a candidate   one choice of the recipe study (CANDIDATES) over dcgan-before; candidates
                joined by commas combine, later ones winning ("fast-lr,batch32")
`--jobs final` runs the final table (FINAL), `--jobs study` the screening of the candidates at
600 s on seed 1 (STUDY).

Each finished job is appended to benchmarks/results/bench_stacked.jsonl with the CPU's name, its
iterations, the training process's peak memory and its 1,000 mode counts; a job already there
for the same CPU is skipped, so the rows (about 5 CPU-hours in all) can run in parts. Run
folders stay in benchmarks/_work/stacked/ for the pictures. `--report` writes
benchmarks/results/bench_stacked.md, docs/images/stacked-samples.png (the dcgan recipe's seed 1
at its largest budget, `gankit sample --grid`) and docs/images/stacked-modes.png (each model's
mode counts, sorted, beside real triples and the uniform count).

  python benchmarks/bench_stacked.py --jobs study
  python benchmarks/bench_stacked.py --jobs final
  python benchmarks/bench_stacked.py --jobs dcgan@600:1+pack2@600:1
  python benchmarks/bench_stacked.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from machine import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "_work" / "stacked"
LOG = RESULTS / "bench_stacked.jsonl"
SAMPLES = ROOT / "docs" / "images" / "stacked-samples.png"
MODES_PLOT = ROOT / "docs" / "images" / "stacked-modes.png"
DATASET, N_MODES, N_SAMPLES = "stacked-mnist", 1000, 26_000
BASES = ("seed-gan", "dcgan-before", "dcgan")
# name -> (overrides over dcgan-before, what it tries); each option is tested against a by-hand
# definition in tests/test_mode_coverage_options.py
CANDIDATES = {
    "pack2": ({"model.pack": 2}, "PacGAN: D judges 2 images at once"),
    "mbstd4": ({"model.minibatch_std": 4}, "minibatch standard deviation, groups of 4"),
    "rpgan": (
        {"train.loss": "rpgan", "train.r1_gamma": 0.1, "train.r2_gamma": 0.1},
        "RpGAN's pairing loss with R1 and R2 (gamma 0.1)",
    ),
    "fast-lr": (
        {
            "optim.lr_g": 1e-3,
            "optim.lr_d": 1e-3,
            "optim.beta1": 0.0,
            "optim.beta2": 0.9,
            "optim.lr_decay": "linear",
            "optim.lr_decay_start": 0.8,
        },
        "cdcgan's budget optimiser: Adam 1e-3, betas (0, 0.9), linear decay over the last 20%",
    ),  # fmt: skip
    "batch32": (
        {"train.batch_size": 32, "train.reuse_fakes": True},
        "batch 32, one G forward per iteration (cdcgan's budget step)",
    ),
    "wide": ({"model.channels": 32}, "twice the conv widths"),
    "no-diffaugment": ({"train.diffaugment": False}, "without DiffAugment"),
}
STUDY = "+".join(["dcgan-before@600:1", *(f"{name}@600:1" for name in CANDIDATES)])
FINAL = "seed-gan@600,1800:1+dcgan-before@600,1800:1,2,3+dcgan@600,1800:1,2,3"
# The targets, on every seed: (budget, fewest modes, largest KL); every channel's copy
# rate below COPY_MAX
TARGETS = {600: (990, 0.1), 1800: (1000, 0.03)}
COPY_MAX = 0.1
# Published rows: (model, modes, KL, where it was printed). GPU-trained, each under its own
# protocol (its own MNIST classifier; VEEGAN and PacGAN read 26,000 samples).
VEEGAN = "Srivastava et al. 2017 (VEEGAN), Table 2"
PACGAN = "Lin et al. 2018 (PacGAN), Table 2 (the VEEGAN experiment)"
R3GAN = "Huang et al. 2024 (R3GAN), its Stacked MNIST table"
PUBLISHED = (
    ("DCGAN", 99, 3.40, VEEGAN),
    ("ALI", 16, 5.40, VEEGAN),
    ("Unrolled GAN", 48.7, 4.32, VEEGAN),
    ("VEEGAN", 150, 2.95, VEEGAN),
    ("PacDCGAN2", 1000, 0.06, PACGAN),
    ("PacDCGAN3", 1000, 0.06, PACGAN),
    ("PacDCGAN4", 1000, 0.07, PACGAN),
    ("WGAN-GP", 959, 0.73, R3GAN),
    ("PacGAN", 992, 0.28, R3GAN),
    ("StyleGAN2", 940, 0.42, R3GAN),
    ("R3GAN", 1000, 0.029, R3GAN),
)


# --- jobs ------------------------------------------------------------------------------------


def parse_jobs(text: str) -> list[tuple[str, int, int]]:
    """(name, budget, seed) of NAME@B1,B2:S1,S2+... ('final' and 'study' name the plans)."""
    text = {"final": FINAL, "study": STUDY}.get(text, text)
    jobs = []
    for part in text.split("+"):
        name, _, rest = part.partition("@")
        budgets, _, seeds = rest.partition(":")
        if name not in BASES and not all(c in CANDIDATES for c in name.split(",")):
            known = ", ".join((*BASES, *CANDIDATES))
            raise ValueError(f"unknown job {name!r}; choose from {known} (candidates combine: a,b)")
        try:
            pairs = [(int(b), int(s)) for b in budgets.split(",") for s in seeds.split(",")]
        except ValueError:
            raise ValueError(f"job {part!r} must read NAME@BUDGET[,BUDGET]:SEED[,SEED]") from None
        if any(b < 1 or s < 0 for b, s in pairs):
            raise ValueError(f"job {part!r}: budgets must be >= 1 s and seeds >= 0")
        jobs += [(name, b, s) for b, s in pairs]
    return list(dict.fromkeys(jobs))


def before_overrides() -> dict:
    """dcgan's [on_budget] choices set back to the preset's own values."""
    from gankit.config import budget_choices, load_preset

    values = load_preset("dcgan").to_dict()
    restore = {}
    for key in budget_choices("dcgan"):
        section, _, name = key.partition(".")
        restore[key] = values[section][name]
    return restore


def job_overrides(name: str) -> dict:
    if name in ("seed-gan", "dcgan"):
        return {}
    if name == "dcgan-before":
        return before_overrides()
    overrides = before_overrides()
    for candidate in name.split(","):
        overrides.update(CANDIDATES[candidate][0])
    return overrides


def job_command(name: str, budget: int, seed: int, out: Path) -> list[str]:
    preset = "seed-gan" if name == "seed-gan" else "dcgan"
    command = [
        "gankit", "train", "--preset", preset, "--dataset", DATASET, "--budget", str(budget),
        "--seed", str(seed), "--out", str(out), "--no-progress", "--overwrite",
    ]  # fmt: skip
    for key, value in sorted(job_overrides(name).items()):  # JSON: `--set` reads it back
        command += ["--set", f"{key}={json.dumps(value)}"]
    return command


def job_folder(name: str, budget: int, seed: int) -> Path:
    return WORK / f"{name}_{budget}_{seed}"


def run_job(name: str, budget: int, seed: int) -> dict:
    """Trains (a fresh process, so its peak memory is its own) and evaluates one job."""
    import torch

    import gankit
    from gankit.metrics.modes import read_modes
    from gankit.metrics.suite import Evaluator
    from gankit.run import RunFolder

    out = job_folder(name, budget, seed)
    command = job_command(name, budget, seed, out)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gankit", *command[1:]], check=True)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    rows = RunFolder(out).metrics()
    judge = Evaluator.load("mnist-sample")
    found = gankit.evaluate(out, evaluator=judge)
    counts = torch.bincount(read_modes(found.images, judge.extractor), minlength=N_MODES)
    real = {k: found.floor[k] for k in ("modes", "kl", "copy_rate")}
    return {
        "job": name,
        "budget": budget,
        "seed": seed,
        "command": " ".join(job_command(name, budget, seed, out.relative_to(ROOT))),
        "iterations": max((r["step"] for r in rows if "step" in r), default=0),
        "wall_s": wall,
        "peak_mb": peak_mb,
        "result": {k: found.result[k] for k in ("modes", "kl", "kl_floor", "copy_rate", "n")},
        "copy_rate_per_channel": found.result["copy_rate_per_channel"],
        "real": real,
        "mode_counts": counts.tolist(),
    }


def read_rows(machine: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in LOG.read_text().splitlines()] if LOG.is_file() else []
    return [r for r in rows if machine is None or r["machine"] == machine]


# --- the report ------------------------------------------------------------------------------


def meets(row: dict) -> bool | None:
    """Whether a row meets the target of its budget (None when its budget has none)."""
    if row["budget"] not in TARGETS:
        return None
    fewest, largest = TARGETS[row["budget"]]
    r = row["result"]
    copy = r["copy_rate"] is None or r["copy_rate"] < COPY_MAX
    return r["modes"] >= fewest and r["kl"] <= largest and copy


def summary_rows(rows: list[dict]) -> list[dict]:
    """One entry per (job, budget): its seeds, the mean and range of modes and KL, the largest
    copy rate, the median iterations and peak memory, and whether every seed met the target."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["job"], row["budget"]), []).append(row)
    order = {name: i for i, name in enumerate((*BASES, *CANDIDATES))}
    order.update({job: len(order) for job, _ in groups if job not in order})  # combinations
    out = []
    for (job, budget), group in sorted(groups.items(), key=lambda g: (g[0][1], order[g[0][0]])):
        group = sorted(group, key=lambda r: r["seed"])
        modes = [r["result"]["modes"] for r in group]
        kls = [r["result"]["kl"] for r in group]
        copies = [r["result"]["copy_rate"] for r in group if r["result"]["copy_rate"] is not None]
        verdicts = [meets(r) for r in group]
        out.append({
            "job": job,
            "budget": budget,
            "seeds": [r["seed"] for r in group],
            "modes": (statistics.mean(modes), min(modes), max(modes)),
            "kl": (statistics.mean(kls), min(kls), max(kls)),
            "copy_rate": max(copies) if copies else None,
            "iterations": statistics.median(r["iterations"] for r in group),
            "peak_mb": max(r["peak_mb"] for r in group),
            "met": None if None in verdicts else all(verdicts),
        })  # fmt: skip
    return out


def span(values: tuple[float, float, float], digits: int) -> str:
    """mean (min-max), or the value alone for one seed or equal values."""
    mean, low, high = values
    if low == high:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def what(job: str) -> str:
    if job == "seed-gan":
        return "the reference MLP GAN"
    if job == "dcgan-before":
        return "dcgan's recipe before the study"
    if job == "dcgan":
        return "`--preset dcgan --budget B`: the recipe users run"
    if "," in job:
        return " + ".join(job.split(",")) + ": the choices above together"
    return CANDIDATES[job][1]


def render(rows: list[dict], machine: str) -> str:
    if not rows:
        return "No rows yet: run `python benchmarks/bench_stacked.py --jobs study`.\n"
    real, floor = rows[0]["real"], rows[0]["result"]["kl_floor"]
    lines = [
        f"gankit on {machine}, each job alone with PyTorch's default threads: `gankit train "
        f"--dataset {DATASET} --budget B`, then {N_SAMPLES:,} samples each read channel by "
        "channel by the shipped MNIST judge. Modes: mean (range) over the seeds; copy rate: the "
        "largest share of any channel's digits closer to a training digit than real digits are "
        f"(below {COPY_MAX} is the target). Targets on every seed: "
        + "; ".join(f"{b} s: >= {m} modes and KL <= {k}" for b, (m, k) in TARGETS.items())
        + ".",
        "",
        "| model | budget s | seeds | iterations | modes | KL | copy rate | peak MB | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary_rows(rows):
        met = {None: "-", True: "met", False: "missed"}[s["met"]]
        copy = "-" if s["copy_rate"] is None else f"{s['copy_rate']:.3f}"
        lines.append(
            f"| {s['job']}: {what(s['job'])} | {s['budget']} | "
            f"{','.join(map(str, s['seeds']))} | {s['iterations']:,.0f} | {span(s['modes'], 0)} "
            f"| {span(s['kl'], 3)} | {copy} | {s['peak_mb']:,.0f} | {met} |"
        )
    lines += [
        f"| real triples ({N_SAMPLES:,}, seed 1) | - | - | - | {real['modes']} | "
        f"{real['kl']:.3f} | {real['copy_rate'] or 0:.3f} | - | - |",
        "",
        f"The floor: a perfect generator's {N_SAMPLES:,} samples over 1,000 equally likely "
        f"modes still give a KL of about (K - 1) / (2N) = {floor:.3f}, from sampling alone; a "
        "KL near it cannot be told from uniform at this n. The judge was trained on the same "
        "5,000 digits that mnist-sample builds the stacks from, so real triples read almost "
        "perfectly, and their copy rate is 1 by construction (each channel is one of those "
        "digits); the copy rate guards against a generator that covers modes by memorising "
        "them.",
        "",
        "**Published** (GPU-trained, each under its own protocol and MNIST classifier; not "
        "measured here. Copied by hand from the tables named, whose PDFs print them as images: "
        "check a figure against its paper before citing it from here):",
        "",
        "| model | modes | KL | where |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m} | {modes:g} | {kl:g} | {where} |" for m, modes, kl, where in PUBLISHED]
    return "\n".join(lines) + "\n"


def plot_modes(rows: list[dict], path: Path) -> None:
    """Each (job, budget)'s mode counts of seed 1, sorted, beside the uniform count."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    for row in sorted(rows, key=lambda r: (r["budget"], r["job"])):
        if row["seed"] != 1 or row["job"] not in BASES:
            continue
        counts = sorted(row["mode_counts"], reverse=True)
        ax.plot(range(1, N_MODES + 1), counts, label=f"{row['job']}, {row['budget']} s")
    ax.axhline(N_SAMPLES / N_MODES, color="black", linestyle="--", label="uniform (26 a mode)")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=0)  # counts: nothing below 0
    ax.set_xlabel("mode, from the most drawn to the least")
    ax.set_ylabel(f"samples of {N_SAMPLES:,}")
    ax.set_title("Stacked MNIST: how the samples spread over the 1,000 modes (seed 1)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def sample_grid(rows: list[dict]) -> None:
    """The dcgan recipe's seed-1 run at its largest budget, drawn as a user would."""
    mine = [r for r in rows if r["job"] == "dcgan" and r["seed"] == 1]
    if not mine:
        return
    folder = job_folder("dcgan", max(r["budget"] for r in mine), 1)
    if folder.is_dir():
        subprocess.run(
            [sys.executable, "-m", "gankit", "sample", str(folder), "--n", "100",
             "--out", str(WORK / "grid.npz"), "--grid", str(SAMPLES)],
            check=True,
        )  # fmt: skip


def report(machine: str) -> None:
    rows = read_rows(machine)
    text = render(rows, machine)
    print(text)
    (RESULTS / "bench_stacked.md").write_text(text)
    if rows:
        plot_modes(rows, MODES_PLOT)
        sample_grid(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", help="'study', 'final' or NAME@BUDGETS:SEEDS[+...]")
    parser.add_argument("--report", action="store_true", help="only write the tables and plots")
    args = parser.parse_args()
    if not args.jobs and not args.report:
        parser.error("give --jobs or --report")
    import torch

    machine = (
        f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, torch {torch.__version__}"
    )
    if args.jobs:
        try:
            jobs = parse_jobs(args.jobs)
        except ValueError as error:
            parser.error(str(error))
        done = {(r["job"], r["budget"], r["seed"]) for r in read_rows(machine)}
        todo = [job for job in jobs if job not in done]
        WORK.mkdir(parents=True, exist_ok=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        for i, job in enumerate(todo):
            print(f"job {job} ({len(todo) - i - 1} more)", file=sys.stderr, flush=True)
            # a fresh process per job: RUSAGE_CHILDREN then holds only this job's training
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                row = pool.submit(run_job, *job).result()
            row["machine"] = machine
            with LOG.open("a") as f:
                f.write(json.dumps(row) + "\n")
    report(machine)


if __name__ == "__main__":
    main()
