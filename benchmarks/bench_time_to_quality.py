"""Time to quality: training wall time until FID, conditional accuracy and recall all reach a bar.

The bar of the conditional presets is seed-cgan's FID, conditional accuracy and recall after its
full 20,000 iterations on mnist-sample, measured on the same seed-cgan run; the unconditional
presets are timed on FID and recall against seed-gan's 20,000 iterations the same way (or FID
alone given with --threshold). So each reference reaches its bar at its last checkpoint at the
latest, and its seed-to-seed spread does not decide the comparison. Each preset trains once,
alone, with its preset defaults and a checkpoint every K iterations; afterwards the
checkpoints are evaluated in order the way bench_quality evaluates (10,000 samples, balanced
labels), so evaluation time is not counted, and the time reported is the run's own
`elapsed_s` at that checkpoint (grids and checkpoint writes included). Times are also given
as a fraction of S, the reference's 20,000-iteration training time in the same run.

`PRESET@budget` trains the preset with its `[on_budget]` rates held constant: the run that
`gankit train --budget` makes follows it exactly until its learning rate starts to decay, so its
first checkpoint at the bar says how soon a budget run gets there.

Without the reference among --presets, the bars, its curve and S come from the reference run
of bench_budget.py on this CPU (benchmarks/results/bench_budget.jsonl; the same command, seed
and sample counts: training is deterministic, so only its times are that run's).

  python benchmarks/bench_time_to_quality.py [--presets seed-cgan:1000:20000,cdcgan:250:5000]
      [--presets cdcgan@budget:250:4000,mlp-cgan-fixed:500:12000]   # bars from the budget log
      [--presets seed-gan:1000:20000,dcgan:250:5000,wgan-gp:250:3000]
      [--existing seed-cgan=DIR]   # a finished run of the same command, instead of training
      [--render]   # only rewrite the table from the saved JSON
Writes benchmarks/results/bench_time_to_quality.{md,json}; runs go to benchmarks/_work/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from bench_budget import LOG as BUDGET_LOG
from bench_budget import REFERENCE_ITERATIONS, cpu_name
from gankit.config import budget_choices, load_preset
from gankit.loading import load_generator
from gankit.metrics.suite import Evaluator
from gankit.sampling import sample_balanced

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "_work"
DATASET = "mnist-sample"


BAR = {"fid": "<=", "cond_acc": ">=", "recall": ">="}  # what "reaching the bar" means
REFERENCES = {True: "seed-cgan", False: "seed-gan"}  # conditional or not -> the bar's preset


def final_bar(run: Path, evaluator: Evaluator, n: int, cache: dict, device: str = "cpu") -> dict:
    """FID, cond_acc and recall of the run's last checkpoint: seed-cgan's at 20,000 iterations
    set the bar."""
    last = max((run / "checkpoints").glob("step_*.pt"))
    result = score(last, run, evaluator, n, cache, device)
    return {key: result[key] for key in BAR if result.get(key) is not None}


def reaches(result: dict, bar: dict) -> bool:
    return all(
        result[key] <= bar[key] if BAR[key] == "<=" else result[key] >= bar[key] for key in bar
    )


def score(
    path: Path, run: Path, evaluator: Evaluator, n: int, cache: dict, device: str = "cpu"
) -> dict:
    """The metric suite on n balanced samples of one checkpoint (each scored once)."""
    if path not in cache:
        loaded = load_generator(run, str(path), device)
        images, labels = sample_balanced(loaded.model, n, seed=0, device=device)
        cache[path] = evaluator(images, labels)
        print(f"{run.name} {path.stem}: FID {cache[path]['fid']:.2f}", file=sys.stderr)
    return cache[path]


def train(
    preset: str,
    every: int,
    iterations: int,
    seed: int,
    threads: int,
    device: str = "cpu",
    work: Path = WORK,
    extra: tuple[str, ...] = (),
) -> Path:
    out = work / f"ttq-{preset.replace('@', '-')}-s{seed}"
    name, _, variant = preset.partition("@")
    if variant == "budget":  # the [on_budget] choices with the learning rate held constant
        choices = {**budget_choices(name), "optim.lr_decay": "none"}
        extra = (*extra, *(f"--set={key}={json.dumps(value)}" for key, value in choices.items()))
    elif variant:
        raise SystemExit(f"{preset}: the only variant is PRESET@budget")
    command = [
        sys.executable,
        "-m",
        "gankit",
        "train",
        "--preset",
        name,
        "--dataset",
        DATASET,
        "--out",
        str(out),
        "--overwrite",
        "--no-progress",
        "--seed",
        str(seed),
        "--threads",
        str(threads),
        "--iterations",
        str(iterations),
        "--device",
        device,
        "--checkpoint-every",
        str(every),
        "--set",
        "schedule.keep_checkpoints=1000",
        *extra,
    ]
    subprocess.run(command, check=True)
    return out


def elapsed(run: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["elapsed_s"] for r in rows if "elapsed_s" in r}


def first_reaching(
    run: Path, evaluator: Evaluator, bar: dict, n: int, cache: dict, device: str = "cpu"
) -> dict:
    """Scores the run's checkpoints in order until one reaches every figure of `bar`; else the
    one with the best FID, marked as not reached."""
    times = elapsed(run)
    best: dict = {}
    for path in sorted((run / "checkpoints").glob("step_*.pt")):
        step = int(path.stem.split("_")[1])
        result = score(path, run, evaluator, n, cache, device)
        row = {"step": step, "wall_s": times[step], **{key: result.get(key) for key in BAR}}
        row["copy_rate"] = result["copy_rate"]
        if not best or row["fid"] < best["fid"]:
            best = row
        if reaches(result, bar):
            return {**row, "reached": True}
    return {**best, "reached": False}


def base(preset: str) -> str:
    return preset.partition("@")[0]


def logged_reference(cpu: str) -> dict | None:
    """bench_budget.py's seed-cgan reference on this CPU: {bar, row, S, points}, or None."""
    if not BUDGET_LOG.exists():
        return None
    rows = [json.loads(x) for x in BUDGET_LOG.read_text().splitlines() if x.strip()]
    refs = [
        r for r in rows if r["kind"] == "reference" and r["dataset"] == DATASET and r["cpu"] == cpu
    ]
    if not refs:
        return None
    points = {p["step"]: p for p in refs[-1]["points"]}
    last = points[REFERENCE_ITERATIONS]
    scores = last["scores"]["10000"]
    row = {
        "preset": "seed-cgan",
        "reference": "seed-cgan",
        "reached": True,
        "step": REFERENCE_ITERATIONS,
        "wall_s": last["elapsed_s"],
        "copy_rate": scores["copy_rate"],
        **{key: scores[key] for key in BAR},
    }
    return {"bar": {key: scores[key] for key in BAR}, "row": row, "S": last["elapsed_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets",
        default="seed-cgan:1000:20000,cdcgan:250:5000",
        help="PRESET[@budget]:CHECKPOINT_EVERY:ITERATIONS, comma-separated",
    )
    parser.add_argument("--existing", action="append", default=[], help="PRESET=RUN_DIR")
    parser.add_argument(
        "--threshold", type=float, help="FID bar (default: seed-cgan's at its last checkpoint)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=10_000, help="samples per evaluation")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the table from the saved results (bench_time_to_quality.json)",
    )
    args = parser.parse_args()
    if args.render:
        write_tables(previous_tables())
        return
    existing = dict(item.split("=", 1) for item in args.existing)
    specs = [spec.split(":") for spec in args.presets.split(",")]
    groups = {load_preset(base(preset)).conditional for preset, _, _ in specs}
    cpu = cpu_name()
    logged = None
    if args.threshold is None and True in groups and "seed-cgan" not in {s[0] for s in specs}:
        logged = logged_reference(cpu)
    missing = [
        REFERENCES[c]
        for c in groups
        if REFERENCES[c] not in {s[0] for s in specs} and not (c and logged)
    ]
    if args.threshold is None and missing:
        parser.error(
            f"without --threshold, --presets must include {missing} (the bars), or "
            f"bench_budget.py must have run its reference on this CPU"
        )
    WORK.mkdir(parents=True, exist_ok=True)
    runs = {}
    for preset, every, iterations in specs:
        if preset in existing:
            runs[preset] = Path(existing[preset])
        else:
            runs[preset] = train(preset, int(every), int(iterations), args.seed, args.threads)
    torch.set_num_threads(2)
    evaluator = Evaluator.load(DATASET)
    cache: dict = {}
    bars = {}
    for conditional in groups:
        if args.threshold is not None:
            bars[conditional] = {"fid": args.threshold}
        elif conditional and logged:
            bars[conditional] = logged["bar"]
        else:
            bars[conditional] = final_bar(runs[REFERENCES[conditional]], evaluator, args.n, cache)
    rows = [logged["row"]] if logged else []
    for preset, run in runs.items():
        conditional = load_preset(base(preset)).conditional
        row = first_reaching(run, evaluator, bars[conditional], args.n, cache)
        rows.append({"preset": preset, "reference": REFERENCES[conditional], **row})
    source = " (the reference's times from bench_budget.py's run)" if logged else ""
    setting = (
        f"{args.n} samples per evaluation, seed {args.seed}, {args.threads} threads; "
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}{source}"
    )
    tables = previous_tables()  # the other group's table, when this call measured one group
    for c in groups:
        name = REFERENCES[c]
        measured = [r for r in rows if r["reference"] == name]
        earlier = tables.get(name, {})
        if earlier.get("bar") == bars[c] and earlier.get("setting") == setting:
            # the same bars and setting: keep the presets this call did not train
            done = {r["preset"] for r in measured}
            measured += [r for r in earlier["rows"] if r["preset"] not in done]
        tables[name] = {"bar": bars[c], "setting": setting, "rows": measured}
    write_tables(tables)


def write_tables(tables: dict) -> None:
    """The markdown of every reference's table, printed and saved with the JSON it came from."""
    text = "\n\n".join(
        table(tables[name]["rows"], tables[name]["bar"], tables[name]["setting"])
        for name in REFERENCES.values()
        if name in tables
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_time_to_quality.md").write_text(text + "\n")
    (RESULTS / "bench_time_to_quality.json").write_text(json.dumps({"tables": tables}, indent=1))


def previous_tables() -> dict:
    """The tables of an earlier call, by reference preset ({} if none, or in an old layout)."""
    path = RESULTS / "bench_time_to_quality.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text()).get("tables", {})


def table(rows: list[dict], bar: dict, setting: str) -> str:
    """Markdown: each preset's first checkpoint at the bar, and its speed-up over the
    reference preset (seed-cgan or seed-gan)."""
    name = rows[0]["reference"]
    reference = next((r for r in rows if r["preset"] == name and r["reached"]), None)
    wanted = ", ".join(f"{key} {BAR[key]} {value:.3g}" for key, value in bar.items())
    conditional = "cond_acc" in bar
    lines = [
        f"Time to quality on {DATASET}: training wall time until {wanted} ({name}'s figures "
        f"at 20,000 iterations, in the same {name} run; grids and checkpoints included); "
        f"{setting}",
        "",
        "| preset | reached | iterations | wall s | fraction of S | FID there |"
        + (" cond_acc there |" if conditional else "")
        + " recall there | copy rate | speed-up |",
        "|---|---|---|---|---|---|" + ("---|" if conditional else "") + "---|---|---|",
    ]
    for r in rows:
        speedup = f"{reference['wall_s'] / r['wall_s']:.1f}x" if reference and r["reached"] else "-"
        reached = "yes" if r["reached"] else "no (best FID shown)"
        accuracy = f" {r['cond_acc']:.3f} |" if conditional else ""
        lines.append(
            f"| {name_of(r['preset'])} | {reached} | {r['step']} | {r['wall_s']:.1f} | "
            f"{fraction(r, reference)} | {r['fid']:.3g} |"
            f"{accuracy} {r['recall']:.3f} | {r['copy_rate']:.3f} | {speedup} |"
        )
    return "\n".join(lines)


def name_of(preset: str) -> str:
    name, _, variant = preset.partition("@")
    return f"{name} (its budget recipe, rate held)" if variant == "budget" else name


def fraction(row: dict, reference: dict | None) -> str:
    """The row's time as a fraction of S, the reference's 20,000-iteration training time."""
    if reference is None or reference["step"] != REFERENCE_ITERATIONS:
        return "-"
    return f"{row['wall_s'] / reference['wall_s']:.3f}"


if __name__ == "__main__":
    main()
