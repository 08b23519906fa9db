"""`gankit evaluate` and `gankit classifier train`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from gankit.cli.errors import UsageError
from gankit.cli.ranges import SEED, int_in
from gankit.metrics.figures import FIGURES

DEFAULT_N = 10_000  # gankit.metrics.suite's, without importing torch-heavy modules here

# --- gankit evaluate ----------------------------------------------------------------------------

TABLE = FIGURES  # key, label, lower is better


def add_evaluate_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("evaluate", help="FID, KID, IS, precision/recall, coverage, accuracy")
    p.add_argument("target", nargs="?", help="a run folder or a samples .npz (omit with --real)")
    p.add_argument("--dataset", help="reference dataset (default: the run's)")
    p.add_argument("--data-dir", help="folder holding the IDX files (mnist, fashion-mnist)")
    p.add_argument(
        "--n",
        type=int_in(2, 10**6),
        help="images to generate (default 10000; 26000 for stacked-mnist)",
    )
    p.add_argument("--real", action="store_true", help="score real held-out images: the floor")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--no-floor", action="store_true", help="table without the real-data floor")
    p.add_argument("--checkpoint", default="latest", help="latest (default), best, or a path")
    p.add_argument(
        "--extractor",
        choices=("domain", "inception"),
        default="domain",
        help="feature space: the dataset's classifier (default) or FID-Inception, for "
        "comparison with published tables (slow on a CPU; weights from pytorch-fid)",
    )
    p.add_argument(
        "--weights",
        help="weights file: the classifier's (default: the dataset's), or with --extractor "
        "inception pytorch-fid's pt_inception-2015-12-05-6726825d.pth (default: in the cache)",
    )
    p.add_argument("--seed", type=SEED, default=0, help="noise and subset seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.set_defaults(handler=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from gankit.evaluation import evaluate
    from gankit.metrics.suite import real_floor_images

    if args.real == bool(args.target):
        raise UsageError("give a run folder or a samples .npz, or --real (not both)")
    if not args.target or not Path(args.target).is_dir():
        if not args.dataset:
            raise UsageError("give --dataset NAME, the real data to compare against")
    source, labels, what = args.target, None, args.target
    n = args.n
    if args.real and args.dataset == "stacked-mnist":
        from gankit.data import load_dataset
        from gankit.metrics.modes import DEFAULT_SAMPLES

        n = n or DEFAULT_SAMPLES
        source = load_dataset(args.dataset, data_dir=args.data_dir, size=n, seed=1).images
        what = f"real images: {n:,} stacked triples (seed 1)"
    elif args.real:
        from gankit.metrics.features import EXTRACTORS

        if args.dataset not in EXTRACTORS:
            raise UsageError(
                f"no domain classifier for dataset {args.dataset!r}; choose from "
                f"{sorted(EXTRACTORS)}"
            )
        n = n or DEFAULT_N
        source, labels, floor_what = real_floor_images(args.dataset, n, args.data_dir)
        what = f"real images: {floor_what}"
    found = evaluate(
        source,
        labels=labels,
        dataset=args.dataset,
        n=n,
        seed=args.seed,
        checkpoint=args.checkpoint,
        data_dir=args.data_dir,
        extractor=args.extractor,
        weights=args.weights,
        floor=not (args.no_floor or args.real or args.json),
        device=args.device,
    )
    result, floor, floor_what = found.result, found.floor, found.floor_what
    what = found.what if found.step is not None else what
    labels = found.labels
    if args.json:
        print(json.dumps(result))
        return 0
    if "modes" in result:
        print_modes(what, result, floor, floor_what)
        return 0
    print(
        f"{what}\nfeatures: {result['extractor']} ({result['extractor_weights']}), "
        f"reference: {result['reference']}, n = {result['n']}"
    )
    print(f"{'metric':24s} {'value':>10s}" + (f" {'real floor':>11s}" if floor else ""))
    for key, label, lower in TABLE:
        if result[key] is None:
            note = result.get(f"{key}_note")
            if note and (key != "intra_fid" or labels is not None):
                print(f"{label:24s} {'-':>10s}  (not reported: {note})")
            continue
        arrow = "(lower is better)" if lower else "(higher is better)"
        line = f"{label:24s} {_fmt(result[key]):>10s}"
        if floor:
            line += f" {_fmt(floor[key]):>11s}"
        print(f"{line}  {arrow}")
    if result.get("classifier_note"):
        print(f"IS, classes covered, conditional accuracy: {result['classifier_note']}")
    if result["copy_rate"] is not None:
        share = result["copy_percentile"]
        print(
            f"copy rate: share of samples nearer a training image than {share:g}% of training "
            f"images are to their nearest other one (about {share / 100:g} for new images, 1 "
            "for copies)"
        )
    if result["reference"].startswith("mnist-sample/"):
        print(
            "note: mnist-sample has no held-out split, so the reference is the training set "
            "itself: a generator that copies it would score perfectly but for the copy rate"
        )
    if floor:
        print(f"real floor: {floor_what}, scored like the samples")
    return 0


def print_modes(what: str, result: dict, floor: dict | None, floor_what: str | None) -> None:
    """The Stacked MNIST table: modes, KL to uniform and copy rate beside real triples'."""
    print(
        f"{what}\neach channel read by {result['extractor']} ({result['extractor_weights']}), "
        f"n = {result['n']}"
    )
    print(f"{'metric':24s} {'value':>10s}" + (f" {'real':>11s}" if floor else ""))
    rows = [("modes", "modes (of 1,000)", False), ("kl", "KL(q || uniform), nats", True),
            ("copy_rate", "copy rate (worst channel)", True)]  # fmt: skip
    for key, label, lower in rows:
        line = f"{label:24s} {_fmt(result[key]):>10s}"
        if floor:
            line += f" {_fmt(floor[key]):>11s}"
        print(f"{line}  ({'lower' if lower else 'higher'} is better)")
    print(
        f"KL floor of a perfect generator at this n: (K - 1) / 2N = {result['kl_floor']:.4g} "
        "(finite samples alone give a uniform generator this KL)"
    )
    if floor:
        print(f"real: {floor_what}, read the same way")


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


# --- gankit classifier train ---------------------------------------------------------------------


def add_classifier_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("classifier", help="the domain classifiers behind the metrics")
    actions = p.add_subparsers(dest="action", required=True)
    t = actions.add_parser("train", help="train the domain classifier of a dataset")
    t.add_argument("--dataset", required=True, help="mnist-sample, mnist or fashion-mnist")
    t.add_argument("--data-dir", help="folder holding the IDX files (mnist, fashion-mnist)")
    t.add_argument("--epochs", type=int_in(1, 1000), help="passes over the images")
    t.add_argument("--seed", type=SEED, default=0, help="random seed (default 0)")
    t.add_argument("--threads", type=int_in(1, 1024), help="CPU threads for PyTorch")
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
    print(
        f"held-out accuracy {result.heldout_accuracy:.4f} on {result.heldout} (IS of those real "
        f"images {result.heldout_is:.2f}); weights: {out}"
    )
    return 0
