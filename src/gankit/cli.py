"""The `gankit` command: argparse subcommands whose handlers build a config and call the library.

Exit codes: 0 success, 1 a run that failed (e.g. diverged), 2 a usage error (bad flag, bad file,
bad value), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit import __version__
from gankit.config import (
    RunConfig,
    available_presets,
    load_preset,
    merge_config,
    parse_value,
    preset_description,
    read_config_file,
)

logger = logging.getLogger("gankit")


class UsageError(ValueError):
    """A bad combination of command-line arguments."""


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
    p.add_argument("--iterations", type=int, help="training iterations (batches)")
    p.add_argument("--batch-size", type=int, help="images per batch")
    p.add_argument("--seed", type=int, help="random seed (drawn and recorded when omitted)")
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's)")
    p.add_argument("--loss", help="GAN loss family, e.g. nonsaturating, hinge")
    p.add_argument("--log-every", type=int, help="iterations per metrics row (default 50)")
    p.add_argument("--sample-every", type=int, help="iterations per sample grid (default 200)")
    p.add_argument("--checkpoint-every", type=int, help="iterations per checkpoint (default 1000)")
    p.add_argument("--time-limit", type=float, help="stop cleanly after this many seconds")
    p.add_argument("--eval-every", type=int, help="iterations per evaluation (FID etc.; off)")
    p.add_argument("--eval-samples", type=int, help="images per evaluation (default 2000)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override any config key, e.g. --set model.conditioning=concat (repeatable)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_train)


def build_train_config(args: argparse.Namespace) -> tuple[RunConfig, Path, bool]:
    """preset < config file < flags; --resume starts from the run's own config.json."""
    if args.resume:
        if args.preset or args.config or args.out:
            raise UsageError(
                "--resume DIR continues a run: do not combine it with --preset, --config or --out"
            )
        out = Path(args.resume)
        config = RunConfig.from_dict(read_config_file(out / "config.json"))
    else:
        if not (args.preset or args.config):
            raise UsageError("give --preset NAME or --config FILE (or --resume DIR)")
        if not args.out:
            raise UsageError("give --out DIR, the run folder to create")
        out = Path(args.out)
        config = load_preset(args.preset) if args.preset else RunConfig()
        if args.config:
            config = merge_config(config, read_config_file(args.config))
    overrides = {
        TRAIN_FLAGS[k]: v for k, v in vars(args).items() if k in TRAIN_FLAGS and v is not None
    }
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = parse_value(value)
    if args.resume:
        allowed = {
            "train.iterations", "train.device", "train.threads", "schedule.time_limit",
            "schedule.eval_every", "schedule.eval_samples",
        }  # fmt: skip
        refused = sorted(set(overrides) - allowed)
        if refused:
            raise UsageError(
                f"--resume keeps the run's config; only {sorted(allowed)} may change, not {refused}"
            )
    return config.with_overrides(overrides), out, bool(args.resume)


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gankit.training.loop import TrainingDiverged, train

    config, out, resume = build_train_config(args)
    bar = tqdm(
        total=config.train.iterations, disable=args.no_progress, unit="it", dynamic_ncols=True
    )

    def progress(step: int, row: dict[str, float]) -> None:
        bar.n = step
        bar.set_postfix_str(
            f"D loss {row['d_loss']:.3f} acc {100 * row['d_acc']:.0f}% "
            f"(real {100 * row['d_acc_real']:.0f}%, fake {100 * row['d_acc_fake']:.0f}%) "
            f"G loss {row['g_loss']:.3f}"
        )

    try:
        state = train(config, out, resume=resume, overwrite=args.overwrite, progress=progress)
    except TrainingDiverged as error:
        bar.close()
        print(f"gankit: training stopped: {error}", file=sys.stderr)
        return 1
    bar.close()
    print(f"run folder: {out} (iteration {state.step})")
    return 0


# --- gankit sample -------------------------------------------------------------------------------


def add_sample_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("sample", help="generate images from a trained run into an .npz")
    p.add_argument("run", help="run folder")
    p.add_argument("--n", type=int, default=100, help="number of images (default 100)")
    p.add_argument("--out", help="output .npz (default RUN/samples.npz)")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--label", type=int, help="one class for every image")
    labels.add_argument("--labels", help="'balanced' (default for CGANs) or a list like 0,1,2")
    p.add_argument("--grid", help="also save the first images (at most 100) as a PNG grid")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--truncation", type=float, help="truncate z to [-t, t] (less variety)")
    p.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.set_defaults(handler=cmd_sample)


def requested_labels(args: argparse.Namespace, num_classes: int) -> torch.Tensor | None:
    from gankit.sampling import balanced_labels, check_labels

    if args.label is None and args.labels is None:
        return balanced_labels(args.n, num_classes) if num_classes else None
    if args.label is not None:
        labels = torch.full((args.n,), args.label, dtype=torch.int64)
    elif args.labels == "balanced":
        if not num_classes:
            raise UsageError(
                "--labels balanced needs a conditional model; this one is unconditional"
            )
        labels = balanced_labels(args.n, num_classes)
    else:
        try:
            chosen = [int(x) for x in args.labels.split(",") if x.strip()]
        except ValueError as error:
            raise UsageError(
                f"--labels must be 'balanced' or integers like 0,1,2: {args.labels!r}"
            ) from error
        if not chosen:
            raise UsageError("--labels is empty")
        labels = torch.tensor(chosen, dtype=torch.int64).repeat(-(-args.n // len(chosen)))[: args.n]
    check_labels(labels, num_classes)
    return labels


def cmd_sample(args: argparse.Namespace) -> int:
    from gankit.sampling import load_generator, sample, save_grid, to_uint8

    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    loaded = load_generator(args.run, args.checkpoint, args.device)
    labels = requested_labels(args, loaded.num_classes)
    rng = torch.Generator().manual_seed(args.seed)
    images = sample(
        loaded.model, args.n, labels=labels, generator=rng, device=args.device,
        truncation=args.truncation,
    )  # fmt: skip
    out = Path(args.out) if args.out else Path(args.run) / "samples.npz"
    arrays = {"images": to_uint8(images)}
    if labels is not None:
        arrays["labels"] = labels.numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(
        f"wrote {args.n} images to {out} "
        f"(checkpoint {loaded.checkpoint.name}, iteration {loaded.step})"
    )
    if args.grid:
        k = min(args.n, 100)
        few = labels is not None and k <= 20  # larger balanced grids hold one class per row
        titles = [str(v) for v in labels[:k].tolist()] if few else None
        save_grid(images[:k], args.grid, ncol=10, titles=titles)
        print(f"wrote grid {args.grid}")
    return 0


# --- gankit evaluate ----------------------------------------------------------------------------

TABLE = [  # key, label, lower is better
    ("fid", "FID", True), ("kid", "KID", True), ("is", "IS", False),
    ("precision", "precision", False), ("recall", "recall", False), ("density", "density", False),
    ("coverage", "coverage", False), ("classes_covered", "classes covered", False),
    ("cond_acc", "conditional accuracy", False), ("intra_fid", "intra-class FID", True),
]  # fmt: skip


def add_evaluate_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("evaluate", help="FID, KID, IS, precision/recall, coverage, accuracy")
    p.add_argument("target", nargs="?", help="a run folder or a samples .npz (omit with --real)")
    p.add_argument("--dataset", help="reference dataset (default: the run's)")
    p.add_argument("--data-dir", help="folder holding the IDX files (mnist, fashion-mnist)")
    p.add_argument("--n", type=int, default=10_000, help="images to generate from a run (10000)")
    p.add_argument("--real", action="store_true", help="score real held-out images: the floor")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-floor", action="store_true", help="table without the real-data floor")
    p.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    p.add_argument("--weights", help="classifier weights file (default: the dataset's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise and subsets (0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.set_defaults(handler=cmd_evaluate)


def evaluation_inputs(args: argparse.Namespace) -> tuple[str, Any, torch.Tensor | None, str]:
    """(dataset, images, labels, description) for `gankit evaluate`."""
    from gankit.metrics.evaluate import load_npz_samples, real_floor_images
    from gankit.sampling import load_generator, sample_balanced

    if args.real == bool(args.target):
        raise UsageError("give a run folder or a samples .npz, or --real (not both)")
    if args.n < 2:
        raise UsageError(f"--n must be >= 2, got {args.n}")
    dataset = args.dataset
    if args.target and Path(args.target).is_dir():
        loaded = load_generator(args.target, args.checkpoint, args.device)
        dataset = dataset or loaded.config.data.dataset
        images, labels = sample_balanced(loaded.model, args.n, args.seed, args.device)
        return dataset, images, labels, f"{args.target} (iteration {loaded.step}, n={args.n})"
    if not dataset:
        raise UsageError("give --dataset NAME, the real data to compare against")
    if args.real:
        images, labels, what = real_floor_images(dataset, args.n, args.data_dir)
        return dataset, images, labels, f"real images: {what}"
    images, labels = load_npz_samples(args.target)
    return dataset, images, labels, args.target


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from gankit.metrics.evaluate import Evaluator, real_floor_images

    dataset, images, labels, what = evaluation_inputs(args)
    evaluator = Evaluator.load(dataset, args.weights, args.data_dir)
    result = evaluator(images, labels, args.seed)
    if args.json:
        print(json.dumps(result))
        return 0
    floor = None
    if not args.no_floor and not args.real:
        real_images, real_labels, floor_what = real_floor_images(
            dataset, len(images), args.data_dir
        )
        floor = evaluator(real_images, real_labels if labels is not None else None, args.seed)
    print(
        f"{what}\nfeatures: {result['extractor']} ({result['extractor_weights']}), "
        f"reference: {result['reference']}, n = {result['n']}"
    )
    print(f"{'metric':24s} {'value':>10s}" + (f" {'real floor':>11s}" if floor else ""))
    for key, label, lower in TABLE:
        if result[key] is None:
            continue
        arrow = "(lower is better)" if lower else "(higher is better)"
        line = f"{label:24s} {_fmt(result[key]):>10s}"
        if floor:
            line += f" {_fmt(floor[key]):>11s}"
        print(f"{line}  {arrow}")
    if floor:
        print(f"real floor: {floor_what}, scored like the samples")
    return 0


def _fmt(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


# --- gankit classifier train ---------------------------------------------------------------------


def add_classifier_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("classifier", help="the domain classifiers behind the metrics")
    actions = p.add_subparsers(dest="action", required=True)
    t = actions.add_parser("train", help="train the domain classifier of a dataset")
    t.add_argument("--dataset", required=True, help="mnist-sample, mnist or fashion-mnist")
    t.add_argument("--data-dir", help="folder holding the IDX files (mnist, fashion-mnist)")
    t.add_argument("--epochs", type=int, help="passes over the training images (default: recipe)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    t.add_argument("--out", help="weights file (default: the user cache, used by the metrics)")
    t.set_defaults(handler=cmd_classifier_train)


def cmd_classifier_train(args: argparse.Namespace) -> int:
    from gankit.metrics.classifier import save_classifier, train_classifier
    from gankit.metrics.features import user_weights_path

    if args.threads:
        torch.set_num_threads(args.threads)
    result = train_classifier(args.dataset, args.data_dir, args.epochs, args.seed)
    out = Path(args.out) if args.out else user_weights_path(args.dataset)
    save_classifier(result, args.dataset, out, args.seed)
    print(f"held-out accuracy {result.heldout_accuracy:.4f} on {result.heldout}; weights: {out}")
    return 0


# --- gankit interpolate / morph / report ---------------------------------------------------------


def add_visual_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("interpolate", help="images along the latent path between 2 seeds")
    p.add_argument("run", help="run folder")
    p.add_argument("--seeds", default="0,1", help="two noise seeds, e.g. 3,7 (default 0,1)")
    p.add_argument("--steps", type=int, default=10, help="images in the strip, ends included")
    p.add_argument("--label", type=int, help="the class, for a conditional model (default 0)")
    p.add_argument("--linear", action="store_true", help="linear instead of spherical path")
    p.add_argument("--out", required=True, help="PNG strip to write")
    p.add_argument("--gif", help="also write an animated GIF (there and back)")
    p.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    p.set_defaults(handler=cmd_interpolate)
    m = subparsers.add_parser("morph", help="one noise, the class condition mixed from A to B")
    m.add_argument("run", help="run folder of a conditional model")
    m.add_argument("--classes", required=True, help="two classes, e.g. 3,8")
    m.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    m.add_argument("--steps", type=int, default=10, help="images in the strip, ends included")
    m.add_argument("--out", required=True, help="PNG strip to write")
    m.add_argument("--gif", help="also write an animated GIF (there and back)")
    m.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    m.set_defaults(handler=cmd_morph)
    r = subparsers.add_parser("report", help="a self-contained HTML report of a run")
    r.add_argument("run", help="run folder")
    r.add_argument("--n", type=int, default=5000, help="samples for the evaluation (5000)")
    r.add_argument("--out", help="HTML file (default RUN/report.html)")
    r.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    r.set_defaults(handler=cmd_report)


def _two_ints(text: str, flag: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split(","))
    except ValueError as error:
        raise UsageError(f"{flag} expects two integers like 3,7, got {text!r}") from error
    return a, b


def _write_strip(images: torch.Tensor, out: str, gif: str | None) -> None:
    from gankit.visuals import save_gif, save_strip

    print(f"wrote {save_strip(images, out)}")
    if gif:
        there_and_back = torch.cat([images, images.flip(0)[1:-1]])  # no repeated end frames
        print(f"wrote {save_gif(there_and_back, gif)}")


def cmd_interpolate(args: argparse.Namespace) -> int:
    from gankit.sampling import load_generator
    from gankit.visuals import interpolate

    seed_a, seed_b = _two_ints(args.seeds, "--seeds")
    loaded = load_generator(args.run, args.checkpoint)
    if args.label is not None and not loaded.num_classes:
        raise UsageError("--label needs a conditional model; this one is unconditional")
    label = args.label if args.label is not None else (0 if loaded.num_classes else None)
    images = interpolate(loaded.model, seed_a, seed_b, args.steps, label, not args.linear)
    _write_strip(images, args.out, args.gif)
    return 0


def cmd_morph(args: argparse.Namespace) -> int:
    from gankit.sampling import load_generator
    from gankit.visuals import class_morph

    label_a, label_b = _two_ints(args.classes, "--classes")
    loaded = load_generator(args.run, args.checkpoint)
    if not loaded.num_classes:
        raise UsageError("morph needs a conditional model; this one is unconditional")
    if args.steps < 2:
        raise UsageError(f"--steps must be >= 2, got {args.steps}")
    images = class_morph(loaded.model, args.seed, label_a, label_b, args.steps)
    _write_strip(images, args.out, args.gif)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gankit.report import write_report

    if args.n < 2:
        raise UsageError(f"--n must be >= 2, got {args.n}")
    print(write_report(args.run, args.out, args.n, args.checkpoint))
    return 0


# --- gankit serve --------------------------------------------------------------------------------


def add_serve_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("serve", help="web demo and PNG/JSON API for a trained run")
    p.add_argument("run", help="run folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from gankit.serving.app import create_app
    except ImportError as error:
        raise UsageError(
            f"gankit serve needs the serve extra: pip install 'gankit[serve]' ({error})"
        ) from error
    app = create_app(args.run, args.checkpoint, args.device)
    print(f"serving {args.run} on http://{args.host}:{args.port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


# --- gankit presets ------------------------------------------------------------------------------


def add_presets_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("presets", help="list the presets")
    p.set_defaults(handler=cmd_presets)


def cmd_presets(args: argparse.Namespace) -> int:
    for name in available_presets():
        print(f"{name:16s} {preset_description(name)}")
    return 0


# --- entry point ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gankit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_train_parser(subparsers)
    add_sample_parser(subparsers)
    add_presets_parser(subparsers)
    add_evaluate_parser(subparsers)
    add_visual_parsers(subparsers)
    add_serve_parser(subparsers)
    add_classifier_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="gankit: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"gankit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gankit: interrupted", file=sys.stderr)
        return 130
