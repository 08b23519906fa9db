"""Can the judge be trusted? Robustness of the domain classifiers, calibration of the metrics,
and what the old and new judges say of a reference CGAN's samples.

  python benchmarks/bench_judge.py [--sections robustness,calibration,disagreement]
      [--samples seed_cgan_samples.npz] [--old-rev REV]

robustness    trains each recipe (`v0.2`: label smoothing, affine augmentation only; `robust`:
              the shipped one) on mnist-sample's 4,000 and on Fashion-MNIST's train split,
              and measures accuracy on the held-out 1,000 / test split, clean and under each
              corruption of gankit.metrics.corruptions.ROBUSTNESS (needs
              /usr/share/datasets/fashion-mnist for Fashion; skipped, and said so, without).
calibration   gankit.metrics.calibration with the shipped weights: held-out real digits,
              disturbed, against a reference of the other 4,000.
disagreement  the shipped weights against those of git revision --old-rev on 2,000 balanced
              samples (`images`, `labels`) of a seed-cgan run after 20,000 iterations: how
              often each reads the requested digit, and a picture of 20 images they disagree
              on (docs/images/judge_disagreements.png) for a person to read.
Writes benchmarks/results/bench_judge.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from gankit.data import load_dataset
from gankit.metrics.calibration import calibration
from gankit.metrics.classifier import EPOCHS, RECIPES, fit, robustness, stratified_split
from gankit.metrics.corruptions import ROBUSTNESS
from gankit.metrics.distances import inception_score
from gankit.metrics.features import DomainClassifier, as_float_images, load_extractor

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OLD_EPOCHS = {"mnist-sample": 20, "fashion-mnist": 5}  # the v0.2 recipe's


def held_out(dataset: str) -> tuple[torch.Tensor, ...]:
    """(train images, train labels, held-out images, held-out labels) as the shipped figures
    are measured: mnist-sample's stratified 1,000 against the other 4,000; Fashion's splits."""
    if dataset == "mnist-sample":
        real = load_dataset(dataset)
        train, held = stratified_split(real.labels, 100, 0)
        return real.images[train], real.labels[train], real.images[held], real.labels[held]
    train, test = load_dataset(dataset, "train"), load_dataset(dataset, "test")
    return train.images, train.labels, test.images, test.labels


def robustness_section() -> dict:
    results: dict = {}
    for dataset in ("mnist-sample", "fashion-mnist"):
        try:
            train_x, train_y, held_x, held_y = held_out(dataset)
        except Exception as error:  # Fashion-MNIST not installed: say so in the table
            results[dataset] = {"skipped": str(error)}
            continue
        results[dataset] = {}
        for name, recipe in RECIPES.items():
            epochs = OLD_EPOCHS[dataset] if name == "v0.2" else EPOCHS[dataset]
            start = time.perf_counter()
            flip = dataset == "fashion-mnist"
            model = fit(train_x, train_y, 10, epochs, 0, flip, recipe=recipe)
            figures = robustness(model, held_x, held_y, seed=0)
            with torch.no_grad():
                figures["is"] = inception_score(model(held_x))[0]
            figures["train_s"] = time.perf_counter() - start
            figures["epochs"] = epochs
            results[dataset][name] = figures
            print(dataset, name, {k: round(v, 4) for k, v in figures.items()}, flush=True)
    return results


def robustness_table(results: dict) -> list[str]:
    lines = [
        "Accuracy of the domain classifiers on held-out images (mnist-sample: the stratified "
        "1,000, trained on the other 4,000; Fashion-MNIST: the test split, trained on the train "
        "split), clean and corrupted. `v0.2`: the recipe before (label smoothing 0.1, affine "
        "augmentation only); `robust`: the shipped recipe (corruption augmentation, no label "
        "smoothing). Shifts go 4 ways, rotations both ways; erosion and dilation use a 2x2 "
        "footprint (strokes lose or gain one pixel of width).",
        "",
    ]
    datasets = [d for d in results if "skipped" not in results[d]]
    header = "| corruption | " + " | ".join(f"{d} v0.2 | {d} robust" for d in datasets) + " |"
    lines += [header, "|---" * (1 + 2 * len(datasets)) + "|"]
    names = ["clean"] + [
        f"{n} {s}" for n, (strengths, _, _) in ROBUSTNESS.items() for s in strengths
    ]
    units = {n: unit for n, (_, unit, _) in ROBUSTNESS.items()}
    for name in names:
        label = name if name == "clean" else f"{name} {units[name.split()[0]]}"
        cells = [f"{results[d][r][name]:.3f}" for d in datasets for r in ("v0.2", "robust")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for key, label in (("is", "IS of the real held-out images"), ("epochs", "epochs")):
        cells = [f"{results[d][r][key]:.4g}" for d in datasets for r in ("v0.2", "robust")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for dataset, result in results.items():
        if "skipped" in result:
            lines += ["", f"{dataset}: not measured ({result['skipped']})"]
    return lines


def calibration_section() -> list[dict]:
    rows = calibration()
    keys = ("fid", "kid", "recall", "precision", "cond_acc", "is", "copy_rate")
    return [
        {"disturbance": r.disturbance, "strength": r.strength, **{k: r.figures[k] for k in keys}}
        for r in rows
    ]


def calibration_table(rows: list[dict]) -> list[str]:
    lines = [
        "Calibration (after Heusel et al. 2017): mnist-sample's stratified held-out 1,000 real "
        "digits, disturbed, scored with the shipped judge against a reference built from the "
        "other 4,000. Speckle: share of pixels set to black or white; blur: Gaussian sigma in "
        "pixels; classes kept: the held-out digits of classes 0..k-1 only (100 k images). The "
        "shipped classifier saw all 5,000 in training, so these digits are held out from the "
        "reference, not from the judge: read cond_acc as its reading of disturbed digits.",
        "",
        "| disturbance | strength | FID | KID | precision | recall | cond_acc | IS | copy rate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['disturbance']} | {r['strength']:g} | {r['fid']:.3f} | {r['kid']:.4f} | "
            f"{r['precision']:.3f} | {r['recall']:.3f} | {r['cond_acc']:.3f} | {r['is']:.2f} | "
            f"{r['copy_rate']:.3f} |"
        )
    return lines


def old_weights(rev: str) -> DomainClassifier:
    """The mnist-sample classifier of git revision `rev`, loaded as gankit loads any weights."""
    raw = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/gankit/weights/mnist-sample.pt"],
        check=True,
        capture_output=True,
    ).stdout
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "old.pt"
        path.write_bytes(raw)
        return load_extractor("mnist-sample", path).model.eval()


def disagreement_section(samples: str, rev: str) -> dict:
    with np.load(samples) as archive:
        images, labels = archive["images"], torch.from_numpy(archive["labels"])
    new = load_extractor("mnist-sample").model.eval()
    old = old_weights(rev)
    with torch.no_grad():
        pixels = as_float_images(images)
        old_pred, new_pred = old(pixels).argmax(1), new(pixels).argmax(1)
    differ = torch.nonzero(old_pred != new_pred).flatten()
    shown = differ[torch.randperm(len(differ), generator=torch.Generator().manual_seed(0))[:20]]
    shown = shown.sort().values
    picture(images[shown.numpy()], labels[shown], old_pred[shown], new_pred[shown])
    return {
        "n": len(labels),
        "old_rev": rev,
        "old_cond_acc": float((old_pred == labels).double().mean()),
        "new_cond_acc": float((new_pred == labels).double().mean()),
        "disagree": len(differ),
        "disagree_old_right": int((old_pred[differ] == labels[differ]).sum()),
        "disagree_new_right": int((new_pred[differ] == labels[differ]).sum()),
        "shown": [
            {
                "index": int(i),
                "asked": int(labels[i]),
                "old": int(old_pred[i]),
                "new": int(new_pred[i]),
            }
            for i in shown
        ],
    }


def picture(images: np.ndarray, asked: torch.Tensor, old: torch.Tensor, new: torch.Tensor) -> None:
    """A 5x4 sheet: each image at 4x with 'asked / old / new' beneath and its number above."""
    cell, scale = 140, 4
    sheet = Image.new("L", (5 * cell, 4 * cell), 255)
    draw = ImageDraw.Draw(sheet)
    for i, image in enumerate(images):
        x, y = (i % 5) * cell, (i // 5) * cell
        draw.text((x + 8, y + 2), f"#{i + 1}", fill=0)
        big = Image.fromarray(image).resize((28 * scale, 28 * scale), Image.NEAREST)
        sheet.paste(big, (x + 14, y + 14))
        draw.text(
            (x + 8, y + 14 + 28 * scale + 4), f"asked {asked[i]} old {old[i]} new {new[i]}", fill=0
        )
    out = ROOT / "docs" / "images" / "judge_disagreements.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="robustness,calibration,disagreement")
    parser.add_argument("--samples", help="2,000 balanced seed-cgan samples (.npz)")
    parser.add_argument("--old-rev", default="431e603", help="git revision of the old weights")
    args = parser.parse_args()
    torch.set_num_threads(2)
    sections = args.sections.split(",")
    path = RESULTS / "bench_judge.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    result["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if "robustness" in sections:
        result["robustness"] = robustness_section()
    if "calibration" in sections:
        result["calibration"] = calibration_section()
    if "disagreement" in sections and args.samples:
        result["disagreement"] = disagreement_section(args.samples, args.old_rev)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    lines = [f"Judge benchmarks on {result['machine']}, torch {torch.__version__}.", ""]
    if "robustness" in result:
        lines += robustness_table(result["robustness"]) + [""]
    if "calibration" in result:
        lines += calibration_table(result["calibration"]) + [""]
    if "disagreement" in result:
        d = result["disagreement"]
        lines += [
            f"Old (git {d['old_rev']}) against new judge on {d['n']} balanced seed-cgan samples "
            f"after 20,000 iterations: conditional accuracy {d['old_cond_acc']:.3f} (old) and "
            f"{d['new_cond_acc']:.3f} (new). They disagree on {d['disagree']} images: the old "
            f"judge reads the requested digit on {d['disagree_old_right']} of them, the new on "
            f"{d['disagree_new_right']}. 20 of them: docs/images/judge_disagreements.png.",
        ]
    text = "\n".join(lines)
    print(text)
    (RESULTS / "bench_judge.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
