"""Quality per CPU-minute: `gankit train --budget B` against seed-cgan's full 20,000 iterations.

S is the wall time of `gankit train --preset seed-cgan` over its 20,000 iterations, the whole
command (start-up included, as a budget counts it), measured on this CPU by this study; every
budget is a fraction of S. Every job runs as a user would:

    gankit train --preset P --dataset D --budget B --seed s [--set KEY=VALUE ...]
    gankit sample RUN --n N --labels balanced
    gankit evaluate RUN/samples.npz --dataset D --json

with N = 5,000 (the targets) and 10,000 (the Pareto plot). The reference run keeps a checkpoint
every 2,500 iterations (S/8), each scored the same way: seed-cgan's curve (for the seed presets
a budget only sets the iteration count). Its 20,000-iteration scores are the bars.

Finished jobs are appended to benchmarks/results/bench_budget.jsonl with the CPU's name; a later
call on the same CPU skips them, so the study runs in parts. `--report` writes the tables
(bench_budget_targets.md, bench_budget_pareto.md) and the plot from what is there.

  python benchmarks/bench_budget.py --jobs targets [--dataset mnist-sample]
  python benchmarks/bench_budget.py --jobs pareto
  python benchmarks/bench_budget.py --jobs cdcgan@0.25:1,2,3+mlp-cgan-fixed@0.5:1
  python benchmarks/bench_budget.py --report
Runs go to benchmarks/_work/budget/ (deleted after scoring unless --keep).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "_work" / "budget"
LOG = RESULTS / "bench_budget.jsonl"
PLOT = ROOT / "docs" / "images" / "budget_pareto.png"
REFERENCE_ITERATIONS, REFERENCE_EVERY = 20_000, 2_500
# Rows carry the study they belong to. Study 3: cdcgan's budget recipe makes one G forward per
# iteration (`train.reuse_fakes`). Study 2 (two G forwards, the plan revised during the run,
# decay over the last fifth) and study 1 (rows without the key: planned once, decay over the
# second half) stay in the tables where study 3 has no row for the job, marked, and under
# their recipe's name for cdcgan itself. A job is done when its row belongs to this study.
STUDY = 3
PAST_STUDIES = {  # study: (mark, names of its recipes)
    1: ("†", {"cdcgan": "cdcgan decay over 2nd half"}),
    2: ("‡", {"cdcgan": "cdcgan two G forwards", "cdcgan repeat": "cdcgan two G forwards repeat"}),
}
SAMPLES = (5_000, 10_000)  # targets, Pareto
TARGET_FRACTIONS = (0.25, 1.2)  # the budgets the targets name (3 seeds each)
KEPT = (
    "fid",
    "kid",
    "is",
    "precision",
    "recall",
    "coverage",
    "classes_covered",
    "cond_acc",
    "copy_rate",
)

# The Pareto study's configurations: the conditional presets as `--budget` runs them (cdcgan
# with its [on_budget] choices: Adam at 1e-3, linear decay over the last fifth), and
# variations of cdcgan under a budget, each one command a user could type. At most 12 besides
# the presets; the variations are run in this order, as far as the time allows.
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "seed-cgan": ("seed-cgan", []),
    "mlp-cgan-fixed": ("mlp-cgan-fixed", []),
    "cdcgan": ("cdcgan", []),
    "cdcgan preset rates": (
        "cdcgan",
        ["optim.lr_g=2e-4", "optim.lr_d=2e-4", "optim.lr_decay=none"],
    ),
    "cdcgan lr 5e-4": ("cdcgan", ["optim.lr_g=5e-4", "optim.lr_d=5e-4"]),
    "cdcgan decay from 0": ("cdcgan", ["optim.lr_decay_start=0"]),
    "cdcgan no decay": ("cdcgan", ["optim.lr_decay=none"]),
    "cdcgan c8": ("cdcgan", ["model.channels=8"]),
    "cdcgan batch 64": ("cdcgan", ["train.batch_size=64"]),
    "cdcgan betas 0.5/0.999": ("cdcgan", ["optim.beta1=0.5", "optim.beta2=0.999"]),
    "cdcgan betas 0.5/0.999 projection-concat": (
        "cdcgan",
        ["optim.beta1=0.5", "optim.beta2=0.999", "model.conditioning=projection-concat"],
    ),
    "cdcgan EMA rampup 0.05": ("cdcgan", ["train.ema_rampup=0.05"]),
    "cdcgan batch 64 EMA rampup 0.05": (
        "cdcgan",
        ["train.batch_size=64", "train.ema_rampup=0.05"],
    ),
    "cdcgan projection-ac": ("cdcgan", ["model.conditioning=projection-ac"]),
}
STUDIES = {
    # what a user should see to pick a budget: the presets at S/8, S/4, S/2 and S (seed-cgan
    # from its reference checkpoints), the variations at S/4
    "pareto": [("cdcgan", f, (1,)) for f in (0.125, 0.5)]
    + [("mlp-cgan-fixed", f, (1,)) for f in (0.25, 0.5)]
    + [(name, 0.25, (1,)) for name in list(CONFIGS)[3:]]
    + [("cdcgan", 1.0, (1,)), ("mlp-cgan-fixed", 0.125, (1,)), ("mlp-cgan-fixed", 1.0, (1,))],
    # the targets: cdcgan as a user runs it, 3 seeds
    "targets": [("cdcgan", 0.25, (1, 2, 3)), ("cdcgan", 1.2, (1, 2, 3))],
    "targets-fashion": [("cdcgan", 0.25, (1, 2, 3))],
}


def gankit(*args: str) -> str:
    command = [sys.executable, "-m", "gankit", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def load_log() -> list[dict]:
    if not LOG.exists():
        return []
    return [json.loads(line) for line in LOG.read_text().splitlines() if line.strip()]


def append(row: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as log:
        log.write(json.dumps(row) + "\n")


def score(
    run: Path, dataset: str, checkpoint: str = "latest", sizes: tuple[int, ...] = SAMPLES
) -> dict[str, dict]:
    """The metric suite on N balanced samples, for each N of `sizes`."""
    scores = {}
    for n in sizes:
        out = run / f"samples_{n}.npz"
        gankit(
            "sample",
            str(run),
            "--n",
            str(n),
            "--labels",
            "balanced",
            "--out",
            str(out),
            "--checkpoint",
            checkpoint,
        )
        result = json.loads(gankit("evaluate", str(out), "--dataset", dataset, "--json"))
        scores[str(n)] = {key: result.get(key) for key in KEPT}
        out.unlink()
    return scores


def reference(dataset: str, cpu: str, keep: bool) -> dict:
    """seed-cgan's 20,000 iterations (seed 1), timed as one command, and its checkpoints
    scored (on mnist-sample all of them, for the curve; elsewhere the last); run once per CPU
    and dataset."""
    done = [
        r
        for r in load_log()
        if r["kind"] == "reference" and r["dataset"] == dataset and r["cpu"] == cpu
    ]
    if done:
        return done[-1]
    run = WORK / f"reference-{dataset}"
    start = time.monotonic()
    gankit(
        "train",
        "--preset",
        "seed-cgan",
        "--dataset",
        dataset,
        "--seed",
        "1",
        "--out",
        str(run),
        "--overwrite",
        "--no-progress",
        "--checkpoint-every",
        str(REFERENCE_EVERY),
        "--set",
        "schedule.keep_checkpoints=100",
    )
    wall = time.monotonic() - start
    elapsed = {
        r["step"]: r["elapsed_s"]
        for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
        if "elapsed_s" in r
    }
    points = []
    checkpoints = sorted((run / "checkpoints").glob("step_*.pt"))
    if dataset != "mnist-sample":  # the curve is plotted for mnist-sample; elsewhere, the bars
        checkpoints = checkpoints[-1:]
    for path in checkpoints:
        step = int(path.stem.split("_")[1])
        points.append(
            {"step": step, "elapsed_s": elapsed[step], "scores": score(run, dataset, str(path))}
        )
        print(
            f"seed-cgan {dataset} step {step}: FID {points[-1]['scores']['10000']['fid']:.2f}",
            file=sys.stderr,
        )
    row = {
        "kind": "reference",
        "dataset": dataset,
        "cpu": cpu,
        "S": round(wall, 1),
        "points": points,
    }
    append(row)
    if not keep:
        shutil.rmtree(run)
    return row


def budget_job(
    dataset: str, name: str, fraction: float, seed: int, S: float, cpu: str, keep: bool
) -> None:
    preset, sets = CONFIGS[name]
    budget = round(fraction * S, 1)
    run = WORK / f"{name.replace(' ', '_').replace('/', '-')}-{dataset}-{fraction}-s{seed}"
    args = [
        "train",
        "--preset",
        preset,
        "--dataset",
        dataset,
        "--budget",
        str(budget),
        "--seed",
        str(seed),
        "--out",
        str(run),
        "--overwrite",
        "--no-progress",
    ]
    for item in sets:
        args += ["--set", item]
    start = time.monotonic()
    gankit(*args)
    wall = time.monotonic() - start
    target = name == "cdcgan" and fraction in TARGET_FRACTIONS
    sizes = SAMPLES if target else SAMPLES[1:]  # the targets score 5,000; the Pareto 10,000
    config = json.loads((run / "config.json").read_text())
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    plan = config.get("plan") or config["budget"]  # gankit 0.3 kept the plan in "budget"
    row = {
        "kind": "budget",
        "study": STUDY,
        "dataset": dataset,
        "cpu": cpu,
        "config": name,
        "fraction": fraction,
        "seed": seed,
        "budget_s": budget,
        "wall_s": round(wall, 1),
        "first_planned": plan.get("planned_iterations"),
        "revised_at": plan.get("revised_at"),
        "planned": config["train"]["iterations"],
        "iterations": max(steps),
        "it_per_s": plan["it_per_s"],
        "sustained_it_per_s": plan.get("revised_it_per_s"),
        "optim": config["optim"],
        "scores": score(run, dataset, sizes=sizes),
    }
    append(row)
    fid = row["scores"]["10000"]["fid"]
    print(
        f"{name} {dataset} {fraction} S seed {seed}: {row['iterations']} it in {wall:.0f} s "
        f"of {budget:.0f}, FID {fid:.2f}",
        file=sys.stderr,
    )
    if not keep:
        shutil.rmtree(run)


def parse_jobs(text: str) -> list[tuple[str, float, tuple[int, ...]]]:
    if text in STUDIES:
        return STUDIES[text]
    jobs = []
    for item in text.split("+"):
        name, _, rest = item.partition("@")
        fraction, _, seeds = rest.partition(":")
        if name not in CONFIGS:
            sys.exit(f"unknown configuration {name!r}; choose from {sorted(CONFIGS)}")
        jobs.append((name, float(fraction), tuple(int(s) for s in (seeds or "1").split(","))))
    return jobs


def run_jobs(dataset: str, text: str, keep: bool) -> None:
    cpu = cpu_name()
    ref = reference(dataset, cpu, keep)
    done = {
        (r["config"], r["fraction"], r["seed"])
        for r in load_log()
        if r["kind"] == "budget"
        and r["dataset"] == dataset
        and r["cpu"] == cpu
        and r.get("study", 1) == STUDY
    }
    for name, fraction, seeds in parse_jobs(text):
        if name == "seed-cgan":
            continue  # its curve is the reference run's checkpoints
        for seed in seeds:
            if (name, fraction, seed) not in done:
                budget_job(dataset, name, fraction, seed, ref["S"], cpu, keep)


# --- report --------------------------------------------------------------------------------------

PAST_RECIPES = [names["cdcgan"] for _, names in PAST_STUDIES.values()]  # cdcgan's earlier recipes
CURVES = ("mlp-cgan-fixed", *PAST_RECIPES, "cdcgan")  # drawn as curves (medians over seeds)


def current(rows: list[dict]) -> list[dict]:
    """The newest row of each job, newer studies first; a row of a past study is kept where no
    newer one has its job, and cdcgan's past recipes under their own names (`PAST_STUDIES`).
    Each row gets `past`: False for this study's rows."""
    newest: dict[tuple, dict] = {}
    for r in rows:
        study = r.get("study", 1)
        name = (
            r["config"] if study == STUDY else PAST_STUDIES[study][1].get(r["config"], r["config"])
        )
        key = (r["dataset"], name, r["fraction"], r["seed"])
        old = newest.get(key)
        if old is None or study >= old.get("study", 1):
            newest[key] = {**r, "config": name, "study": study, "past": study != STUDY}
    return list(newest.values())


def label(r: dict) -> str:
    return f"{r['config']} {PAST_STUDIES[r['study']][0]}" if r["past"] else r["config"]


def bars(ref: dict) -> dict[str, dict]:
    """seed-cgan's scores after 20,000 iterations, per sample count."""
    return next(p for p in ref["points"] if p["step"] == REFERENCE_ITERATIONS)["scores"]


def target_checks(dataset: str, fraction: float, bar: dict) -> list[tuple[str, callable]]:
    """The issue's targets: (description, test of a row's 5,000-sample scores)."""
    copy = ("copy rate < 0.1", lambda s: s["copy_rate"] < 0.1)
    if dataset == "mnist-sample" and fraction == 0.25:
        return [
            (f"FID <= {bar['fid']:.3g}", lambda s: s["fid"] <= bar["fid"]),
            (f"cond_acc >= {bar['cond_acc']:.4f}", lambda s: s["cond_acc"] >= bar["cond_acc"]),
            (f"recall >= {2 * bar['recall']:.3f}", lambda s: s["recall"] >= 2 * bar["recall"]),
            copy,
        ]
    if dataset == "mnist-sample" and fraction == 1.2:
        return [
            ("cond_acc >= 0.985", lambda s: s["cond_acc"] >= 0.985),
            (f"FID <= {bar['fid'] / 10:.3g}", lambda s: s["fid"] <= bar["fid"] / 10),
            copy,
        ]
    return [
        (f"FID < {bar['fid']:.3g}", lambda s: s["fid"] < bar["fid"]),
        (f"cond_acc > {bar['cond_acc']:.4f}", lambda s: s["cond_acc"] > bar["cond_acc"]),
        (f"recall > {bar['recall']:.3f}", lambda s: s["recall"] > bar["recall"]),
        copy,
    ]


def targets_table(rows: list[dict], refs: dict[str, dict], cpu: str) -> str:
    lines = [
        f"`gankit train --preset cdcgan --budget B` against seed-cgan's 20,000 iterations in the "
        f"same study (B a fraction of S, seed-cgan's wall time); 5,000 balanced samples; {cpu}, "
        f"2 cores.",
        "",
        "| dataset | budget | seed | iterations | wall s | FID | cond_acc | recall | copy rate "
        "| targets | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, ref in refs.items():
        bar = bars(ref)["5000"]
        lines.append(
            f"| {dataset} | seed-cgan 20k (S = {ref['S']:.0f} s) | 1 | 20000 | {ref['S']:.0f} | "
            f"{bar['fid']:.3g} | {bar['cond_acc']:.4f} | {bar['recall']:.3f} | "
            f"{bar['copy_rate']:.3f} | the bars | - |"
        )
        for r in rows:
            wanted = (0.25, 1.2) if dataset == "mnist-sample" else (0.25,)
            if r["dataset"] != dataset or r["config"] != "cdcgan" or r["fraction"] not in wanted:
                continue
            if r["past"]:
                continue
            s = r["scores"]["5000"]
            checks = target_checks(dataset, r["fraction"], bar)
            failed = [text for text, test in checks if not test(s)]
            lines.append(
                f"| {dataset} | {r['fraction']:g} S = {r['budget_s']:.0f} s | {r['seed']} | "
                f"{r['iterations']} | {r['wall_s']:.0f} | {s['fid']:.3g} | {s['cond_acc']:.4f} | "
                f"{s['recall']:.3f} | {s['copy_rate']:.3f} | {'; '.join(t for t, _ in checks)} | "
                f"{'yes' if not failed else 'no: ' + ', '.join(failed)} |"
            )
    return "\n".join(lines)


def pareto_table(rows: list[dict], ref: dict, cpu: str) -> str:
    bar = bars(ref)["10000"]
    lines = [
        f"Quality per CPU-minute on mnist-sample: `gankit train --budget B`, B a fraction of S = "
        f"{ref['S']:.0f} s (seed-cgan's 20,000 iterations, measured in this study); seed-cgan "
        f"itself from its checkpoints every 2,500 iterations; 10,000 balanced samples, seed 1 (the "
        f"screening of a few variations: seed 2, the weakest seed of the targets); "
        f"{cpu}, 2 cores. seed-cgan at 20k: FID {bar['fid']:.3g}, cond_acc {bar['cond_acc']:.3f}, "
        f"recall {bar['recall']:.3f}.",
        "",
        "| configuration | budget | seed | iterations (first plan) | wall s | FID | cond_acc "
        "| recall | precision | copy rate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in ref["points"]:
        s = p["scores"]["10000"]
        lines.append(
            f"| seed-cgan | {p['elapsed_s'] / ref['S']:.3f} S | 1 | {p['step']} | "
            f"{p['elapsed_s']:.0f} | {s['fid']:.3g} | {s['cond_acc']:.3f} | {s['recall']:.3f} | "
            f"{s['precision']:.3f} | {s['copy_rate']:.3f} |"
        )
    ran = {r["config"] for r in rows if r["dataset"] == "mnist-sample" and not r["past"]}
    missing = [name for name in CONFIGS if name not in ran and name != "seed-cgan"]
    if missing:
        lines[0] += (
            f" Defined in the study but not run with its current recipe on this CPU: "
            f"{', '.join(missing)}."
        )
    lines[0] += (
        f" Rows of past studies: {PAST_STUDIES[2][0]} cdcgan's recipe then made two G forwards "
        f"per iteration (fresh noise for G's step), about 0.9x the iterations per second of "
        f"today's; {PAST_STUDIES[1][0]} the first pass besides planned once, without revising "
        f"(it used 76-100% of its budget), and decayed over the second half of the run instead "
        f"of the last fifth."
    )
    order = sorted(
        rows,
        key=lambda r: (-r["study"], r["config"] != "cdcgan", r["config"], r["fraction"], r["seed"]),
    )
    for r in order:
        # the cdcgan recipes' other seeds are in the targets table
        if r["dataset"] != "mnist-sample" or (r["seed"] != 1 and r["config"] in CURVES):
            continue
        s = r["scores"]["10000"]
        first = f" ({r['first_planned']})" if r.get("first_planned") else ""
        lines.append(
            f"| {label(r)} | {r['fraction']:g} S | {r['seed']} | {r['iterations']}{first} | "
            f"{r['wall_s']:.0f} | "
            f"{s['fid']:.3g} | {s['cond_acc']:.3f} | {s['recall']:.3f} | {s['precision']:.3f} | "
            f"{s['copy_rate']:.3f} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], ref: dict, cpu: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a script of its own: its process, its backend
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullLocator

    S = ref["S"]
    bar = bars(ref)["10000"]
    curves: dict[str, list[tuple[float, float, float]]] = {
        "seed-cgan": [
            (p["elapsed_s"] / S, p["scores"]["10000"]["fid"], p["scores"]["10000"]["cond_acc"])
            for p in ref["points"]
        ],
    }
    for name in CURVES:
        by_fraction: dict[float, list[dict]] = {}
        for r in rows:
            if r["config"] == name and r["dataset"] == "mnist-sample":
                by_fraction.setdefault(r["fraction"], []).append(r["scores"]["10000"])
        curves[name] = [
            (
                f,
                statistics.median(s["fid"] for s in scored),
                statistics.median(s["cond_acc"] for s in scored),
            )
            for f, scored in sorted(by_fraction.items())
        ]
    others = [r for r in rows if r["dataset"] == "mnist-sample" and r["config"] not in curves]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    # both panels lower-is-better on log axes: FID, and the share of samples the judge reads as
    # another class (1 - conditional accuracy), where 0.01 against 0.02 is visible
    panels = (
        (axes[0], 1, "fid", "FID (domain features, lower is better)", lambda v: v),
        (axes[1], 2, "cond_acc", "misread samples: 1 - conditional accuracy", lambda v: 1 - v),
    )
    for ax, index, key, label, value in panels:
        for name, points in curves.items():
            if points:
                past = name in PAST_RECIPES  # past recipes of cdcgan, dashed
                ax.plot(
                    [p[0] for p in points],
                    [value(p[index]) for p in points],
                    "o--" if past else "o-",
                    alpha=0.6 if past else 1.0,
                    label=f"{name} (past study)" if past else name,
                )
        ax.scatter(
            [r["fraction"] for r in others],
            [value(r["scores"]["10000"][key]) for r in others],
            marker="x",
            color="grey",
            label="cdcgan variations (S/4)",
        )
        ax.axhline(
            value(bar[key]),
            color="black",
            linestyle="--",
            linewidth=1,
            label="seed-cgan at 20k iterations",
        )
        for f in (0.125, 0.25, 0.5, 1.0):
            ax.axvline(f, color="lightgrey", linewidth=0.8, zorder=0)
        ax.set_xscale("log", base=2)
        ax.set_xticks([0.125, 0.25, 0.5, 1.0], ["S/8", "S/4", "S/2", "S"])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(minor_label))
        ax.set_xlabel("training budget (fraction of S, seed-cgan's 20k iterations)")
        ax.set_ylabel(label)
        seconds = ax.secondary_xaxis("top", functions=(lambda f: f * S, lambda s: s / S))
        seconds.set_xticks([f * S for f in (0.125, 0.25, 0.5, 1.0)])
        seconds.xaxis.set_minor_locator(NullLocator())
        seconds.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f} s"))
        seconds.set_xlabel(f"seconds on {cpu}, 2 cores")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)


def minor_label(value: float, _: object) -> str:
    """Labels the 2s and 5s between the powers of ten of a log axis, not every minor tick."""
    leading = round(value / 10 ** math.floor(math.log10(value)))
    return f"{value:g}" if leading in (2, 5) else ""


def summary_table(rows: list[dict], refs: dict[str, dict], cpu: str) -> str:
    """The README's summary: the reference against the recommended preset under a budget,
    medians over seeds, with the copy rate."""
    lines = [
        f"5,000 balanced samples scored in the domain classifier's features; budgets as "
        f"fractions of S, seed-cgan's 20,000-iteration time; medians over seeds; {cpu}, 2 cores.",
        "",
        "| dataset | model | time | FID | cond_acc | recall | copy rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, ref in refs.items():
        bar = bars(ref)["5000"]
        lines.append(
            f"| {dataset} | `seed-cgan`, 20,000 iterations (the reference) | S = {ref['S']:.0f} s "
            f"| {bar['fid']:.3g} | {bar['cond_acc']:.3f} | {bar['recall']:.3f} | "
            f"{bar['copy_rate']:.3f} |"
        )
        for fraction in sorted(
            {r["fraction"] for r in rows if r["dataset"] == dataset and r["config"] == "cdcgan"}
        ):
            runs = [
                r
                for r in rows
                if r["dataset"] == dataset
                and r["config"] == "cdcgan"
                and r["fraction"] == fraction
                and not r["past"]
            ]
            if len(runs) < 2:  # single-seed Pareto points stay in the full tables
                continue

            def median(key: str, runs: list[dict] = runs) -> float:
                return statistics.median(r["scores"]["5000"][key] for r in runs)

            wall = statistics.median(r["wall_s"] for r in runs)
            lines.append(
                f"| {dataset} | `cdcgan --budget {fraction:g}S` ({len(runs)} seeds) | "
                f"{wall:.0f} s | {median('fid'):.3g} | {median('cond_acc'):.3f} | "
                f"{median('recall'):.3f} | {median('copy_rate'):.3f} |"
            )
    return "\n".join(lines)


def report() -> None:
    rows = load_log()
    cpus = [r["cpu"] for r in rows if r["kind"] == "reference"]
    if not cpus:
        sys.exit("no reference run yet: run --jobs first")
    cpu = cpus[-1]  # the newest CPU's study; rows from other CPUs are not mixed in
    refs = {r["dataset"]: r for r in rows if r["kind"] == "reference" and r["cpu"] == cpu}
    jobs = current([r for r in rows if r["kind"] == "budget" and r["cpu"] == cpu])
    targets = targets_table(jobs, refs, cpu)
    (RESULTS / "bench_budget_targets.md").write_text(targets + "\n")
    print(targets + "\n")
    summary = summary_table(jobs, refs, cpu)
    (RESULTS / "bench_budget_summary.md").write_text(summary + "\n")
    if "mnist-sample" in refs:
        pareto = pareto_table(jobs, refs["mnist-sample"], cpu)
        (RESULTS / "bench_budget_pareto.md").write_text(pareto + "\n")
        print(pareto)
        plot(jobs, refs["mnist-sample"], cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", help=f"a study ({', '.join(STUDIES)}) or NAME@FRACTION:SEEDS joined by +"
    )
    parser.add_argument("--dataset", default="mnist-sample")
    parser.add_argument("--report", action="store_true", help="write the tables and the plot")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    args = parser.parse_args()
    if not args.jobs and not args.report:
        parser.error("give --jobs or --report")
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    WORK.mkdir(parents=True, exist_ok=True)
    if args.jobs:
        run_jobs(args.dataset, args.jobs, args.keep)
    if args.report:
        report()


if __name__ == "__main__":
    main()
