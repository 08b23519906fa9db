"""The report's two reference models re-measured with the shipped judge, over seeds: their
figures, their instability, and the hyper-parameters the report blamed.

Runs (each `gankit train` for 20,000 iterations, evaluated every 1,000 iterations on 5,000
samples during training, then `gankit.evaluate` on 10,000 samples beside the real-data floor):
  seeds   seed-gan and seed-cgan, seeds 1-5 on mnist-sample and 1-3 on fashion-mnist (the
          full 60,000 training images; `apt-get install dataset-fashion-mnist`).
  conditioning
          the report's first hypothesis: seed-cgan with only its conditioning changed (the CGAN
          paper's one-hot concat; a projection D with conditional BatchNorm in G), seeds 1-3 on
          mnist-sample, beside the same seeds of the reference's multiply.
  data    5,000 training images against 60,000 (the report trained on full MNIST, gankit's
          offline runs on the 5,000-digit sample): seed-cgan on a class-balanced 5,000 of
          fashion-mnist (`data.size`), seeds 1-3, judged against the full dataset like the
          60,000-image runs of the same seeds.
  sweep   seed-cgan on mnist-sample, seed 1: the learning rate (both players) in 1e-4, 2e-4,
          5e-4, 1e-3 times Adam's beta_1 in 0.5, 0.0; then seeds 2 and 3 of the best. The best
          is chosen by SELECTION (fixed before the runs). The reference's own setting (2e-4,
          0.5) is the `seeds` section's run of the same seed, not run twice.
  ablation
          the Keras code's details, one switched off at a time and all four quirks together,
          on seed-cgan (mnist-sample, seeds 1-3, planned seed by seed), beside the reference's
          same seeds.

Runs of the sweep and the ablation are scored at the end only (their tables need nothing else).
Every finished run's row is written to benchmarks/results/bench_reference.json at once; a run
whose row is there is skipped when the benchmark runs again (the runs take about 6.5 CPU-hours
in all, so it is meant to be run in pieces). `--render` only redraws the tables and the plot.
`--jobs 2 --threads 1` runs two at a time, one thread each: on 2 cores an MLP step at batch 32
gains only 1.1x from a second thread, so the runs finish in about 0.6x the time. Their training
seconds are then measured side by side and are marked so (S, the time unit of the budget
figures, is measured by bench_budget, alone on the machine).

  python benchmarks/bench_reference.py [--sections seeds,conditioning,data,sweep,ablation]
                                       [--jobs 1] [--threads N] [--limit N] [--render]
Writes benchmarks/results/bench_reference.{md,json}, docs/images/instability.png and
docs/images/reference-grids.png (seed 1's grids at the iterations of the report's pictures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from machine import cpu_name

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "_work" / "reference"
PLOT = ROOT / "docs" / "images" / "instability.png"
GRIDS = ROOT / "docs" / "images" / "reference-grids.png"
GRID_STEPS = (2000, 10_000, 16_000, 20_000)  # the iterations of the report's pictures
ITERATIONS, EVAL_EVERY, EVAL_SAMPLES, FINAL_N = 20_000, 1000, 5000, 10_000
SEEDS = {"mnist-sample": (1, 2, 3, 4, 5), "fashion-mnist": (1, 2, 3)}
PRESETS = ("seed-gan", "seed-cgan")
CONDITIONINGS, CONDITIONING_SEEDS = ("concat", "projection"), (1, 2, 3)
SUBSET = 5000
SECTIONS = ("seeds", "conditioning", "data", "sweep", "ablation")
LRS, BETA1S = (1e-4, 2e-4, 5e-4, 1e-3), (0.5, 0.0)
REFERENCE_SETTING = (2e-4, 0.5)  # seed-cgan's own learning rate and beta_1
QUIRKS = ("separate_d_steps", "g_eval_for_fakes", "reuse_noise", "real_labels_for_fakes")
# name -> (the overrides, what changes from the reference)
ABLATION = {
    "torch-init": ({"model.init": "torch"}, "PyTorch's default init instead of Keras'"),
    "one-d-step": ({"quirks.separate_d_steps": False}, "one D step on real and fake together"),
    "g-train-fakes": ({"quirks.g_eval_for_fakes": False}, "G in training mode for D's fakes"),
    "fresh-noise": ({"quirks.reuse_noise": False}, "fresh noise in G's step"),
    "random-fake-labels": (
        {"quirks.real_labels_for_fakes": False},
        "random labels for D's fakes",
    ),
    "no-quirks": ({f"quirks.{q}": False for q in QUIRKS}, "all four quirks off"),
}
ABLATION_SEEDS = (1, 2, 3)
SELECTION = (
    "the best setting is the one with the highest conditional accuracy; settings within 0.005 "
    "of it are tied, and the tie goes to the lowest FID"
)
FIGURES = ("fid", "cond_acc", "recall", "precision", "copy_rate")


def run_key(preset: str, dataset: str, seed: int, overrides: dict) -> str:
    settings = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    return f"{preset}|{dataset}|{seed}|{settings}"


def sweep_overrides(lr: float, beta1: float) -> dict:
    """The overrides of one sweep setting; none for the reference's own, whose runs are the
    `seeds` section's."""
    if (lr, beta1) == REFERENCE_SETTING:
        return {}
    return {"optim.lr_g": lr, "optim.lr_d": lr, "optim.beta1": beta1}


def sweep_setting(overrides: dict) -> tuple[float, float] | None:
    """(learning rate, beta_1) of a seed-cgan mnist-sample run that belongs to the sweep."""
    if not overrides:
        return REFERENCE_SETTING
    if set(overrides) == {"optim.lr_g", "optim.lr_d", "optim.beta1"}:
        return overrides["optim.lr_g"], overrides["optim.beta1"]
    return None


def planned_runs(sections: list[str], done: dict) -> list[tuple[str, str, int, dict]]:
    """The runs of `sections`, section by section in the order given."""
    runs = []
    for section in sections:
        if section == "seeds":
            for dataset, seeds in SEEDS.items():
                runs += [(p, dataset, s, {}) for s in seeds for p in PRESETS]
        elif section == "conditioning":
            runs += [
                ("seed-cgan", "mnist-sample", s, {"model.conditioning": c})
                for s in CONDITIONING_SEEDS
                for c in CONDITIONINGS
            ]
        elif section == "data":
            runs += [
                ("seed-cgan", "fashion-mnist", s, {"data.size": SUBSET})
                for s in SEEDS["fashion-mnist"]
            ]
        elif section == "sweep":
            grid = [sweep_overrides(lr, b) for lr in LRS for b in BETA1S]
            runs += [("seed-cgan", "mnist-sample", 1, o) for o in grid]
            best = best_setting(done)
            if best is not None:  # its confirmation, once the grid is complete
                runs += [("seed-cgan", "mnist-sample", s, best) for s in (2, 3)]
        elif section == "ablation":
            runs += [
                ("seed-cgan", "mnist-sample", s, overrides)
                for s in ABLATION_SEEDS
                for overrides, _ in ABLATION.values()
            ]
    return _unique(runs)


def _unique(runs: list[tuple[str, str, int, dict]]) -> list[tuple[str, str, int, dict]]:
    """`runs` without repeats (the sweep's reference setting is also a `seeds` run)."""
    seen, kept = set(), []
    for run in runs:
        key = run_key(*run)
        if key not in seen:
            seen.add(key)
            kept.append(run)
    return kept


def best_setting(done: dict) -> dict | None:
    """SELECTION over the grid's seed-1 rows, or None until every setting has one."""
    rows = []
    for lr in LRS:
        for beta1 in BETA1S:
            overrides = sweep_overrides(lr, beta1)
            row = done.get(run_key("seed-cgan", "mnist-sample", 1, overrides))
            if row is None:
                return None
            rows.append((overrides, row["result"]))
    top = max(r["cond_acc"] for _, r in rows)
    tied = [(o, r) for o, r in rows if r["cond_acc"] >= top - 0.005]
    return min(tied, key=lambda item: item[1]["fid"])[0]


def run_folder(preset: str, dataset: str, seed: int, overrides: dict) -> Path:
    name = run_key(preset, dataset, seed, overrides).replace("|", "_").replace(",", "_")
    return WORK / name.replace("=", "-")


def train_command(
    preset: str, dataset: str, seed: int, overrides: dict, threads: int, out: Path
) -> list[str]:
    """`gankit train`'s arguments for one run; each override's value written as JSON, which
    `--set` reads back as the same value (a bare `False` would be the string 'False'). Runs
    of the sweep and the ablation are scored at the end only: their tables read nothing else,
    and evaluating during training does not change training (tests/test_evaluate.py)."""
    final_only = sweep_setting(overrides) not in (None, REFERENCE_SETTING) or any(
        overrides == o for o, _ in ABLATION.values()
    )
    schedule = [] if final_only else [
        "--eval-every", str(EVAL_EVERY), "--eval-samples", str(EVAL_SAMPLES)
    ]  # fmt: skip
    return [
        sys.executable, "-m", "gankit", "train", "--preset", preset, "--dataset", dataset,
        "--out", str(out), "--seed", str(seed), "--iterations", str(ITERATIONS), *schedule,
        "--checkpoint-every", "1000", "--sample-every", "1000", "--no-progress",
        "--threads", str(threads),
        *[a for k, v in sorted(overrides.items()) for a in ("--set", f"{k}={json.dumps(v)}")],
    ]  # fmt: skip


def train_and_measure(preset: str, dataset: str, seed: int, overrides: dict, threads: int) -> dict:
    """One run: train (skipped when its last checkpoint exists), then the final evaluation."""
    import torch

    import gankit
    from gankit.run import RunFolder

    torch.set_num_threads(threads)

    out = run_folder(preset, dataset, seed, overrides)
    command = train_command(preset, dataset, seed, overrides, threads, out)
    final = out / "checkpoints" / f"step_{ITERATIONS:07d}.pt"
    started = time.perf_counter()
    if not final.is_file():
        if (out / "config.json").is_file():  # an interrupted run goes on from its checkpoint
            command = [
                *command[:4],
                "--resume",
                str(out),
                "--no-progress",
                "--threads",
                str(threads),
            ]
        else:
            command.append("--overwrite")
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    rows = RunFolder(out).metrics()
    found = gankit.evaluate(out, n=FINAL_N, seed=0, checkpoint=str(final))
    logged = {r["step"]: r for r in rows if "d_acc" in r}
    evals = [
        {
            "step": r["step"],
            **{k: r.get(k) for k in ("fid", "cond_acc", "recall", "cond_acc_per_class")},
            "d_acc_real": logged.get(r["step"], {}).get("d_acc_real"),
            "d_acc_fake": logged.get(r["step"], {}).get("d_acc_fake"),
        }
        for r in rows
        if r.get("kind") == "eval"
    ]
    return {
        "preset": preset,
        "dataset": dataset,
        "seed": seed,
        "overrides": overrides,
        "result": {k: found.result.get(k) for k in (*FIGURES, "classes_covered")},
        "floor": {k: (found.floor or {}).get(k) for k in FIGURES},
        "floor_what": found.floor_what,
        "train_s": training_seconds(rows),
        "wall_s": wall,
        "evals": evals,
    }


def training_seconds(rows: list[dict]) -> float | None:
    """The loop's seconds over every process of a run: `elapsed_s` starts again from 0 when a
    run resumes (its rows after the checkpoint are dropped), so each segment's last figure is
    added."""
    total, last = 0.0, None
    for row in rows:
        if "elapsed_s" in row:
            if last is not None and row["elapsed_s"] < last:
                total += last
            last = row["elapsed_s"]
    return None if last is None else total + last


# --- summaries -------------------------------------------------------------------------------


def figure(value: float, digits: int) -> str:
    """`value` to `digits` significant digits, without an exponent."""
    text = f"{value:.{digits}g}"
    return f"{value:.0f}" if "e" in text and abs(value) >= 1 else text


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return figure(values[0], 3)
    return f"{figure(statistics.mean(values), 3)} ± {figure(statistics.stdev(values), 2)}"


def volatility(
    evals: list[dict], key: str, after: int = 5000, relative: bool = False
) -> float | None:
    """Mean |change| of `key` between consecutive evaluations from iteration `after` on; with
    `relative`, each change as a fraction of the value before it."""
    values = [e[key] for e in evals if e["step"] >= after and e.get(key) is not None]
    steps = list(zip(values, values[1:], strict=False))
    if not steps:
        return None
    return statistics.mean(abs(b - a) / (abs(a) if relative else 1) for a, b in steps)


def changes(evals: list[dict], *keys: str, after: int = 5000) -> list[list[float]]:
    """For each key, its changes between consecutive evaluations from iteration `after` on (only
    where every key has a value): the trend of a run taken out, what is left is whether two
    figures move together from one evaluation to the next."""
    kept = [e for e in evals if e["step"] >= after and all(e.get(k) is not None for k in keys)]
    return [[b[k] - a[k] for a, b in zip(kept, kept[1:], strict=False)] for k in keys]


def worst_class_drop(evals: list[dict], after: int = 5000) -> float | None:
    """The largest fall of one class's accuracy between consecutive evaluations."""
    rows = [e["cond_acc_per_class"] for e in evals if e["step"] >= after]
    rows = [r for r in rows if r]
    drops = [
        max(a - b for a, b in zip(x, y, strict=True)) for x, y in zip(rows, rows[1:], strict=False)
    ]
    return max(drops) if drops else None


def rank_correlation(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rho (torchmetrics'; ties get their mean rank), or None below 3 points."""
    if len(xs) < 3:
        return None
    import torch
    from torchmetrics.functional import spearman_corrcoef

    return float(
        spearman_corrcoef(
            torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
        )
    )


def render(results: dict) -> str:
    done = results.get("runs", {})
    lines = [
        f"Measured on {results.get('machine', '?')}. Each run: {ITERATIONS:,} iterations, "
        f"evaluated every {EVAL_EVERY:,} on {EVAL_SAMPLES:,} samples, and at the end on "
        f"{FINAL_N:,} samples (balanced labels, noise seed 0) beside the real-data floor; "
        "figures in the shipped judge's feature space (docs/judge.md).",
        "",
        "**The reference models over seeds** (mean ± standard deviation over the seeds done):",
        "",
        "| model | dataset | seeds | FID | conditional accuracy | recall | precision | copy rate "
        "| train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in done.values():
        if not row["overrides"]:
            groups.setdefault((row["preset"], row["dataset"]), []).append(row)
    for (preset, dataset), rows in sorted(groups.items()):
        cells = []
        for key in FIGURES:
            values = [r["result"][key] for r in rows if r["result"][key] is not None]
            cells.append(spread(values) if values else "-")
        train = spread([r["train_s"] for r in rows if r["train_s"]])
        seeds = ",".join(str(r["seed"]) for r in sorted(rows, key=lambda r: r["seed"]))
        lines.append(f"| {preset} | {dataset} | {seeds} | " + " | ".join(cells) + f" | {train} |")
    if groups:
        jobs = max(r.get("jobs", 1) for rows in groups.values() for r in rows)
        lines += [
            "",
            f"Train s: the training loop's seconds, {jobs} run(s) at a time on the machine "
            "(with evaluations every 1,000 iterations; not an S, which is measured alone).",
            "",
            "Real-data floors: "
            + "; ".join(
                f"{d}: FID {rows[0]['floor']['fid']:.3g}, recall {rows[0]['floor']['recall']:.3g}"
                for (p, d), rows in sorted(groups.items())
                if p == PRESETS[-1]
            )
            + ".",
            "",
            "**Instability** (per run, from iteration 5,000 on; medians over the seeds): the "
            "mean change of FID (and as a share of the FID before it) and of conditional "
            "accuracy between consecutive evaluations 1,000 iterations apart, the largest "
            "fall of one class's accuracy between two of "
            "them, and whether D's accuracy (the report's gauge) tracks quality: Spearman's rho "
            "across the evaluations of D's accuracy on fakes against FID, and between their "
            "changes from one evaluation to the next from iteration 5,000 on (the trend of "
            "training taken out).",
            "",
            "| model | dataset | seeds | mean \\|ΔFID\\| | as a share of FID "
            "| mean \\|Δaccuracy\\| | worst class drop | rho(D fake accuracy, FID) "
            "| rho(their changes) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for (preset, dataset), rows in sorted(groups.items()):
        cells = []
        for measure in (
            lambda r: volatility(r["evals"], "fid"),
            lambda r: volatility(r["evals"], "fid", relative=True),
            lambda r: volatility(r["evals"], "cond_acc"),
            lambda r: worst_class_drop(r["evals"]),
            lambda r: rank_correlation(
                [e["d_acc_fake"] for e in r["evals"] if e["d_acc_fake"] is not None],
                [e["fid"] for e in r["evals"] if e["d_acc_fake"] is not None],
            ),
            lambda r: rank_correlation(*changes(r["evals"], "d_acc_fake", "fid")),
        ):
            values = [v for v in map(measure, rows) if v is not None]
            cells.append(f"{statistics.median(values):.3g}" if values else "-")
        lines.append(f"| {preset} | {dataset} | {len(rows)} | " + " | ".join(cells) + " |")
    lines += conditioning_table(done)
    lines += data_table(done)
    lines += sweep_table(done)
    lines += ablation_table(done)
    return "\n".join(lines) + "\n"


def cgan_runs(done: dict, dataset: str, overrides: dict, seeds=None) -> list[dict]:
    """seed-cgan's rows on `dataset` with exactly `overrides`, of `seeds` (all when None)."""
    return [
        r
        for r in done.values()
        if r["preset"] == "seed-cgan"
        and r["dataset"] == dataset
        and r["overrides"] == overrides
        and (seeds is None or r["seed"] in seeds)
    ]


def sweep_table(done: dict) -> list[str]:
    """The grid at seed 1, then the best setting and the reference's over seeds 1-3."""
    grid = {}
    for r in done.values():
        setting = sweep_setting(r["overrides"])
        if r["preset"] == "seed-cgan" and r["dataset"] == "mnist-sample" and setting:
            grid.setdefault(setting, []).append(r)
    head = (
        "**The hyper-parameters the report blamed** (seed-cgan on mnist-sample; the learning "
        f"rate of both players in {', '.join(f'{lr:g}' for lr in LRS)} times Adam's beta_1 in "
        f"{', '.join(f'{b:g}' for b in BETA1S)}, seed 1, then seeds 2 and 3 of the best). "
        f"Rule, fixed before the runs: {SELECTION}."
    )
    if set(grid) <= {REFERENCE_SETTING}:
        return ["", head + " Not run yet."]
    lines = [
        "",
        head,
        "",
        "| learning rate | beta_1 | FID | conditional accuracy | recall | precision |",
        "|---|---|---|---|---|---|",
    ]
    for lr in LRS:
        for beta1 in BETA1S:
            row = next((r for r in grid.get((lr, beta1), []) if r["seed"] == 1), None)
            if row is None:
                lines.append(f"| {lr:g} | {beta1:g} | not run yet | | | |")
                continue
            res = row["result"]
            mark = " (the reference)" if (lr, beta1) == REFERENCE_SETTING else ""
            lines.append(
                f"| {lr:g}{mark} | {beta1:g} | {res['fid']:.3g} | {res['cond_acc']:.3f} "
                f"| {res['recall']:.3g} | {res['precision']:.3g} |"
            )
    best = best_setting(done)
    if best is None:
        return lines + ["", "Best by the rule: not decided until all 8 settings have run."]
    setting = sweep_setting(best)
    lines += [
        "",
        f"Best by the rule: learning rate {setting[0]:g}, beta_1 {setting[1]:g}"
        + (", the reference's own." if setting == REFERENCE_SETTING else ".")
        + " Over seeds 1-3 (mean ± standard deviation):",
        "",
        "| setting | seeds | FID | conditional accuracy | recall | precision |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (("best", setting), ("reference", REFERENCE_SETTING)):
        rows = [r for r in grid.get(key, []) if r["seed"] in (1, 2, 3)]
        label = f"{name}: {key[0]:g}, beta_1 {key[1]:g}"
        lines.append(seeds_row(label, rows, FIGURES[:4]))
        if key == REFERENCE_SETTING and name == "best":
            break
    return lines


def ablation_table(done: dict) -> list[str]:
    """Each detail of the Keras code switched off, over the seeds it has run, beside the
    reference over the same seeds."""
    found = []
    for name, (overrides, what) in ABLATION.items():
        rows = cgan_runs(done, "mnist-sample", overrides)
        if rows:
            found.append((name, what, rows))
    if not found:
        return []
    seeds = sorted({r["seed"] for _, _, rows in found for r in rows})
    reference = cgan_runs(done, "mnist-sample", {}, seeds)
    lines = [
        "",
        "**The Keras code's details, one at a time** (seed-cgan on mnist-sample with one detail "
        "changed; mean ± standard deviation over the seeds; the reference over seeds "
        f"{','.join(map(str, seeds))}):",
        "",
        "| change | seeds | FID | conditional accuracy | recall | precision |",
        "|---|---|---|---|---|---|",
        seeds_row("none (the reference)", reference, FIGURES[:4]),
    ]
    return lines + [seeds_row(f"{name}: {what}", rows, FIGURES[:4]) for name, what, rows in found]


def seeds_row(name: str, rows: list[dict], keys: tuple[str, ...]) -> str:
    """A table row: `name`, the seeds of `rows`, and each figure's spread over them."""
    rows = sorted(rows, key=lambda r: r["seed"])
    cells = [spread([r["result"][k] for r in rows]) for k in keys]
    return f"| {name} | {','.join(str(r['seed']) for r in rows)} | " + " | ".join(cells) + " |"


def conditioning_table(done: dict) -> list[str]:
    """The first hypothesis: each conditioning over the seeds it has run, multiply (the
    reference, no overrides) over the same seeds."""
    rows = {"multiply": []}
    for r in done.values():
        if r["preset"] != "seed-cgan" or r["dataset"] != "mnist-sample":
            continue
        if not r["overrides"] and r["seed"] in CONDITIONING_SEEDS:
            rows["multiply"].append(r)
        elif set(r["overrides"]) == {"model.conditioning"}:
            rows.setdefault(r["overrides"]["model.conditioning"], []).append(r)
    if len(rows) == 1:
        return []
    lines = [
        "",
        "**The report's first hypothesis** (seed-cgan on mnist-sample with only its conditioning "
        "changed; mean ± standard deviation over the seeds):",
        "",
        "| conditioning | seeds | FID | conditional accuracy | recall | precision |",
        "|---|---|---|---|---|---|",
    ]
    return lines + [
        seeds_row(name, rows[name], FIGURES[:4])
        for name in ("multiply", *CONDITIONINGS)
        if rows.get(name)
    ]


def data_table(done: dict) -> list[str]:
    """seed-cgan on fashion-mnist from 5,000 training images and from all 60,000, the same
    seeds."""
    subset = [r for r in done.values() if r["overrides"] == {"data.size": SUBSET}]
    if not subset:
        return []
    full = cgan_runs(done, "fashion-mnist", {}, {r["seed"] for r in subset})
    lines = [
        "",
        f"**{SUBSET:,} training images against 60,000** (seed-cgan on fashion-mnist, judged "
        "against the full dataset; mean ± standard deviation over the same seeds):",
        "",
        "| training images | seeds | FID | conditional accuracy | recall | precision | copy rate |",
        "|---|---|---|---|---|---|---|",
    ]
    return lines + [
        seeds_row(what, rows, FIGURES)
        for what, rows in ((f"{SUBSET:,} (500 a class)", subset), ("60,000", full))
        if rows
    ]


def plot(results: dict) -> None:
    """FID, recall, conditional accuracy and D's accuracy on fakes against iterations, one line
    per seed, for both models on mnist-sample: what "unstable" means here."""
    from matplotlib.figure import Figure

    rows = [
        r
        for r in results.get("runs", {}).values()
        if not r["overrides"] and r["dataset"] == "mnist-sample"
    ]
    if not rows:
        return
    panels = (
        ("fid", "FID (log scale)", 1),
        ("recall", "recall", 1),
        ("cond_acc", "conditional accuracy (%)", 100),
        ("d_acc_fake", "D's accuracy on fakes (%)", 100),
    )
    fig = Figure(figsize=(10, 10.5))
    axes = fig.subplots(len(panels), 2, sharex=True)
    colours = {}
    for column, preset in enumerate(PRESETS):
        for r in sorted((r for r in rows if r["preset"] == preset), key=lambda r: r["seed"]):
            colour = colours.setdefault(r["seed"], f"C{len(colours)}")
            steps = [e["step"] for e in r["evals"]]
            for row, (key, _, scale) in enumerate(panels):
                values = [e.get(key) for e in r["evals"]]
                if any(v is not None for v in values):
                    axes[row, column].plot(
                        steps,
                        [None if v is None else scale * v for v in values],
                        color=colour,
                        label=f"seed {r['seed']}",
                    )
        axes[0, column].set_title(f"{preset}, mnist-sample")
        axes[0, column].set_yscale("log")
        axes[0, column].legend(fontsize=8, ncol=2)
        for row, (_, label, _) in enumerate(panels):
            axes[row, column].set_ylabel(label)
            axes[row, column].grid(alpha=0.3)
        axes[-1, column].set_xlabel("iteration")
    axes[2, 0].text(
        0.5, 0.5, "no condition", ha="center", va="center", transform=axes[2, 0].transAxes
    )
    fig.suptitle(
        "The reference models every 1,000 iterations (5,000 samples each), one line per seed"
    )
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=100)


def grids() -> None:
    """Seed 1's fixed-noise grids of both reference models on mnist-sample at the iterations of
    the report's pictures, side by side (from the run folders, when they are here)."""
    from matplotlib.figure import Figure
    from PIL import Image

    from gankit.run import RunFolder

    folders = {p: RunFolder(run_folder(p, "mnist-sample", 1, {})) for p in PRESETS}
    paths = {(p, n): folders[p].grid_path(n) for p in PRESETS for n in GRID_STEPS}
    if not all(path.is_file() for path in paths.values()):
        return
    heights = [Image.open(paths[p, GRID_STEPS[0]]).height for p in PRESETS]
    fig = Figure(figsize=(2.6 * len(GRID_STEPS), 0.6 + 2.6 * sum(heights) / max(heights)))
    axes = fig.subplots(len(PRESETS), len(GRID_STEPS), gridspec_kw={"height_ratios": heights})
    for row, preset in enumerate(PRESETS):
        for column, step in enumerate(GRID_STEPS):
            ax = axes[row, column]
            ax.imshow(Image.open(paths[preset, step]).convert("L"), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{preset}, {step:,} iterations", fontsize=9)
    fig.tight_layout()
    fig.savefig(GRIDS, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--limit", type=int, default=None, help="run at most this many runs")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="per run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--render", action="store_true", help="only redraw tables and plot")
    args = parser.parse_args()
    sections = args.sections.split(",")
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.jobs < 1 or args.threads < 1 or (args.limit is not None and args.limit < 1):
        parser.error("--jobs, --threads and --limit must be at least 1")
    path = RESULTS / "bench_reference.json"
    results = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    results.setdefault("selection", SELECTION)
    if not args.render:
        import torch

        machine = (
            f"{cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, "
            f"torch {torch.__version__}"
        )
        WORK.mkdir(parents=True, exist_ok=True)
        started = 0
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            running: dict = {}
            while True:
                # planned again after each run: the sweep's confirmation runs appear only once its
                # grid is done
                todo = [
                    r
                    for r in planned_runs(sections, results["runs"])
                    if run_key(*r) not in results["runs"] and run_key(*r) not in running
                ]
                todo.sort(key=lambda r: not run_folder(*r).is_dir())  # interrupted runs first
                while todo and len(running) < args.jobs and started < (args.limit or 10**9):
                    run = todo.pop(0)
                    print(f"run {run_key(*run)} ({len(todo)} more)", file=sys.stderr, flush=True)
                    running[run_key(*run)] = pool.submit(train_and_measure, *run, args.threads)
                    started += 1
                if not running:
                    break
                done, _ = wait(running.values(), return_when=FIRST_COMPLETED)
                for key in [k for k, f in running.items() if f in done]:
                    row = running.pop(key).result()
                    row["machine"], row["jobs"] = machine, args.jobs
                    results["runs"][key] = row
                    results["machine"] = machine
                    RESULTS.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(results, indent=1))  # kept as soon as it is done
    text = render(results)
    print(text)
    (RESULTS / "bench_reference.md").write_text(text)
    plot(results)
    grids()


if __name__ == "__main__":
    main()
