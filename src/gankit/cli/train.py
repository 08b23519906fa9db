"""`gankit train` and `gankit presets`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from gankit.cli.errors import UsageError
from gankit.cli.ranges import BIG, SEED, float_in, int_in
from gankit.config import (
    BudgetPlan,
    RunConfig,
    available_presets,
    budget_choices,
    load_preset,
    merge_config,
    parse_value,
    preset_description,
    read_config_file,
)
from gankit.data import absolute_data_paths
from gankit.losses import LOSSES
from gankit.run import RunFolder

# --- gankit train --------------------------------------------------------------------------------

TRAIN_FLAGS = {  # flag dest -> dotted config key
    "dataset": "data.dataset",
    "data_dir": "data.data_dir",
    "iterations": "train.iterations",
    "batch_size": "train.batch_size",
    "seed": "train.seed",
    "device": "train.device",
    "threads": "train.threads",
    "loss": "train.loss",
    "log_every": "schedule.log_every",
    "sample_every": "schedule.sample_every",
    "checkpoint_every": "schedule.checkpoint_every",
    "time_limit": "schedule.time_limit",
    "eval_every": "schedule.eval_every",
    "eval_samples": "schedule.eval_samples",
    "precision": "train.precision",
    "sync_bn": "train.sync_bn",
}


def add_train_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train a GAN or CGAN and write a run folder")
    source = p.add_argument_group("what to train (preset < config file < flags)")
    source.add_argument("--preset", help=f"start from a preset: {', '.join(available_presets())}")
    source.add_argument("--config", help="a .toml or .json config file (e.g. a run's config.json)")
    source.add_argument(
        "--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint"
    )
    p.add_argument("--out", metavar="DIR", help="run folder to create (required unless --resume)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--dataset", help="mnist-sample (default), mnist, fashion-mnist, a .npz or a folder"
    )
    p.add_argument("--data-dir", help="folder holding the IDX files of mnist / fashion-mnist")
    p.add_argument("--iterations", type=int_in(1, BIG), help="training iterations")
    p.add_argument("--batch-size", type=int_in(1, 65536), help="images per batch")
    p.add_argument("--seed", type=SEED, help="random seed (drawn and recorded when omitted)")
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int_in(1, 1024), help="CPU threads for PyTorch")
    p.add_argument("--loss", choices=sorted(LOSSES), help="GAN loss family")
    p.add_argument("--log-every", type=int_in(1, BIG), help="iterations per metrics row (50)")
    p.add_argument("--sample-every", type=int_in(1, BIG), help="iterations per grid (200)")
    p.add_argument(
        "--checkpoint-every", type=int_in(1, BIG), help="iterations per checkpoint (1000)"
    )
    p.add_argument(
        "--time-limit", type=float_in(1e-3, 1e8), help="stop cleanly after this many seconds"
    )
    p.add_argument(
        "--budget",
        type=float_in(1, 1e8),
        metavar="SECONDS",
        help="plan the iterations to fit this wall-clock budget, start-up and final evaluation "
        "included (measured on this machine, recorded in config.json)",
    )
    p.add_argument(
        "--eval-every", type=int_in(1, BIG), help="iterations per evaluation (FID etc.; off)"
    )
    p.add_argument("--eval-samples", type=int_in(2, 10**6), help="images per evaluation (2000)")
    p.add_argument("--precision", choices=["fp32", "bf16"], help="bf16: autocast forward passes")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile G and D")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also write TensorBoard events to RUN/tb/ (the tensorboard extra); allowed on "
        "--resume",
    )
    p.add_argument(
        "--sync-bn", action="store_true", default=None, help="SyncBatchNorm under torchrun"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set model.conditioning=concat (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--nproc", type=int_in(1, 1024), help="data-parallel processes here (launches torchrun)"
    )
    p.set_defaults(handler=cmd_train)


def build_train_config(args: argparse.Namespace) -> tuple[RunConfig, Path, bool]:
    """preset < config file < flags; --resume starts from the run's own config.json."""
    if args.resume:
        if args.preset or args.config or args.out:
            raise UsageError(
                "--resume DIR continues a run: do not combine it with --preset, --config or --out"
            )
        out = Path(args.resume)
        config = RunConfig.from_dict(RunFolder(out).read_config())
    else:
        if not (args.preset or args.config):
            raise UsageError("give --preset NAME or --config FILE (or --resume DIR)")
        if not args.out:
            raise UsageError("give --out DIR, the run folder to create")
        out = Path(args.out)
        # a budget lays the preset's own [on_budget] choices over it, below the file and flags
        budget = args.budget is not None
        config = load_preset(args.preset, budget=budget) if args.preset else RunConfig()
        if args.config:  # its relative data paths are relative to the file's own folder
            from_file = merge_config(config, read_config_file(args.config))
            config = absolute_data_paths(from_file, Path(args.config).resolve().parent)
    overrides = {
        TRAIN_FLAGS[k]: v for k, v in vars(args).items() if k in TRAIN_FLAGS and v is not None
    }
    if args.compile:
        overrides["train.compile"] = True
    if args.tensorboard:
        overrides["train.tensorboard"] = True
    if args.budget is not None:
        if args.iterations is not None:
            raise UsageError("--budget plans the iterations: do not give --iterations too")
        overrides["budget.seconds"] = args.budget
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = parse_value(value)
    config = config.with_overrides(overrides)
    if args.budget is not None:  # plan again (a resume re-plans what is left)
        config = dataclasses.replace(config, plan=BudgetPlan())
    # a resume's changes are checked against the run's own config by `train` itself
    return config, out, bool(args.resume)


# what torchrun starts on every rank; the test suite's launcher (tests/launcher.py) names itself
TORCHRUN_ENTRY = ["-m", "gankit"]


def launch_torchrun(args: argparse.Namespace) -> int:
    """`gankit train --nproc N ...` = `torchrun --standalone --nproc-per-node N -m gankit train ...`
    through torchrun's own Python entry point."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    if args.nproc < 1:
        raise UsageError(f"--nproc must be >= 1, got {args.nproc}")
    rest, skip = [], False
    for item in args.argv:
        if skip or item.startswith("--nproc="):
            skip = False
            continue
        if item == "--nproc":
            skip = True
            continue
        rest.append(item)
    command = ["--standalone", "--nproc-per-node", str(args.nproc), *TORCHRUN_ENTRY, *rest]
    from gankit.training.measure import STARTED_ENV, process_started

    # a budget counts from this launcher's start, not from its workers' (the variable is set
    # for the workers only: an in-process caller's environment is left as it was)
    previous = os.environ.get(STARTED_ENV)
    os.environ[STARTED_ENV] = repr(time.time() - (time.monotonic() - process_started()))
    try:
        torchrun(command)
    except ChildFailedError as error:
        print(f"gankit train: a process failed:\n{error}", file=sys.stderr)
        return 1
    finally:
        if previous is None:
            os.environ.pop(STARTED_ENV, None)
        else:
            os.environ[STARTED_ENV] = previous
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gankit.training.loop import TrainingDiverged, train
    from gankit.training.measure import process_started

    if args.nproc is not None and "RANK" not in os.environ:
        return launch_torchrun(args)
    config, out, resume = build_train_config(args)
    main_rank = os.environ.get("RANK", "0") == "0"
    planning = config.budget.seconds is not None and not config.planned
    bar = tqdm(
        total=None if planning else config.train.iterations,
        disable=args.no_progress or not main_rank,
        unit="it",
        dynamic_ncols=True,
    )

    def progress(step: int, row: dict[str, float]) -> None:
        bar.n = step
        bar.set_postfix_str(
            f"D loss {row['d_loss']:.3f} acc {100 * row['d_acc']:.0f}% "
            f"(real {100 * row['d_acc_real']:.0f}%, fake {100 * row['d_acc_fake']:.0f}%) "
            f"G loss {row['g_loss']:.3f}"
        )

    try:
        state = train(
            config,
            out,
            resume=resume,
            overwrite=args.overwrite,
            progress=progress,
            started=process_started(),
        )
    except TrainingDiverged as error:
        bar.close()
        print(f"gankit: training stopped: {error}", file=sys.stderr)
        return 1
    bar.close()
    if main_rank:
        print(f"run folder: {out} (iteration {state.step}{speed_note(*state.trained)})")
        if config.budget.seconds is not None:
            print_plan(out)
    return 0


def speed_note(iterations: int, seconds: float) -> str:
    """ "; 52.1 it/s, 19.2 ms per iteration": this process's steps, without grids, evaluations
    and checkpoints (empty when it trained none)."""
    if iterations <= 0 or seconds <= 0:
        return ""
    return f"; {iterations / seconds:.1f} it/s, {1000 * seconds / iterations:.2f} ms per iteration"


def print_plan(out: Path) -> None:
    """The budget plan as recorded in the run's config.json."""
    recorded = RunConfig.from_dict(RunFolder(out).read_config())
    plan, seconds = recorded.plan, recorded.budget.seconds
    chosen = budget_choices_in_effect(recorded)
    if chosen:
        print(f"{recorded.preset} under --budget: " + ", ".join(f"{k}={v!r}" for k, v in chosen))
    first = plan.planned_iterations or recorded.train.iterations
    revised = ""
    if plan.revised_at is not None:
        revised = (
            f", revised at iteration {plan.revised_at} to {recorded.train.iterations} from the "
            f"{plan.revised_it_per_s:.1f} it/s sustained"
        )
    print(
        f"budget {seconds:g} s: planned {first} iterations at {plan.it_per_s:.1f} it/s "
        f"after {plan.startup_s:.1f} s of start-up (grid {plan.grid_s:.3f} s, checkpoint "
        f"{plan.checkpoint_s:.3f} s, final evaluation {plan.evaluation_s:.1f} s){revised}; "
        f"`--config {out}/config.json` repeats it without planning"
    )


def budget_choices_in_effect(config: RunConfig) -> list[tuple[str, Any]]:
    """The preset's [on_budget] choices that the recorded configuration kept (a flag, --set or
    a config file may have overridden some)."""
    from gankit.config import available_presets

    if config.preset not in available_presets():
        return []
    values = config.to_dict()
    kept = []
    for key, value in budget_choices(config.preset).items():
        section, _, name = key.partition(".")
        if values[section][name] == value:
            kept.append((key, value))
    return kept


# --- gankit presets ------------------------------------------------------------------------------


def add_presets_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("presets", help="list the presets")
    p.set_defaults(handler=cmd_presets)


def cmd_presets(args: argparse.Namespace) -> int:
    for name in available_presets():
        print(f"{name:16s} {preset_description(name)}")
        choices = budget_choices(name)
        if choices:
            chosen = ", ".join(f"{key}={json.dumps(value)}" for key, value in choices.items())
            print(f"{'':16s}   under --budget: {chosen}")
    return 0
