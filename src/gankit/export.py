"""`gankit export`: a run's generator, alone, in a format other tools read.

    DIR/
      gankit-export.json   the manifest: format, file, input contract, source run and checkpoint
      generator.onnx | generator.pt2 | generator.safetensors
      config.json          the run's configuration
      samples.png          100 samples (balanced labels), noise seed 0
      model_card.md        what the model is, its input contract, training and evaluation

The generator is the EMA one where the run has it, in eval mode (BatchNorm on its running
statistics). ONNX goes through `torch.onnx.export` (the dynamo exporter) and `pt2` through
`torch.export`, both with a dynamic batch; `safetensors` holds the weights alone, which
`gankit.load_generator(DIR)` and `gankit sample DIR` read back.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gankit._version import __version__
from gankit.errors import ConfigError, UsageError
from gankit.images import save_grid
from gankit.loading import LoadedGenerator, load_generator
from gankit.metrics.figures import figures_for
from gankit.run import ExportFolder
from gankit.sampling import balanced_labels

logger = logging.getLogger(__name__)

FORMATS = {"onnx": "generator.onnx", "pt2": "generator.pt2", "safetensors": "generator.safetensors"}
EXTRAS = {"onnx": ("onnx", "onnxscript"), "safetensors": ("safetensors",), "pt2": ()}
EVAL_SAMPLES, EVAL_SEED = 5000, 0
MAX_BATCH = 65_536  # the exported programs' dynamic batch range is 1..MAX_BATCH


class GeneratorProgram(nn.Module):
    """The generator with the plain signature an exported graph has: `(z, labels) -> images`
    for a conditional model (int64 labels (N,)), `(z) -> images` for an unconditional one."""

    def __init__(self, generator: nn.Module, conditional: bool) -> None:
        super().__init__()
        self.generator = generator
        self.conditional = conditional

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, labels if self.conditional else None)


@dataclass
class Contract:
    """What the exported generator takes and gives."""

    latent_dim: int
    num_classes: int
    image_shape: tuple[int, int, int]

    def example(self, n: int = 2) -> tuple[torch.Tensor, ...]:
        z = torch.zeros(n, self.latent_dim)
        if not self.num_classes:
            return (z,)
        return z, torch.arange(n, dtype=torch.int64) % self.num_classes

    def to_dict(self) -> dict[str, Any]:
        inputs: dict[str, Any] = {
            "z": {
                "shape": ["N", self.latent_dim],
                "dtype": "float32",
                "distribution": "standard normal N(0, 1), one row per image",
            },
        }
        if self.num_classes:
            inputs["labels"] = {
                "shape": ["N"],
                "dtype": "int64",
                "range": [0, self.num_classes - 1],
            }
        return {
            "inputs": inputs,
            "output": {
                "name": "images",
                "shape": ["N", *self.image_shape],
                "dtype": "float32",
                "range": [-1.0, 1.0],
                "to_uint8": "round((x + 1) * 127.5)",
            },
            "batch": [1, MAX_BATCH],
        }


def require_extras(fmt: str) -> None:
    for module in EXTRAS[fmt]:
        try:
            __import__(module)
        except ImportError as error:
            raise ConfigError(
                f"--format {fmt} needs the {module} package: pip install 'gankit[{fmt}]'"
            ) from error


def write_model(loaded: LoadedGenerator, fmt: str, path: Path) -> None:
    contract = contract_of(loaded)
    program = GeneratorProgram(loaded.model, bool(loaded.num_classes)).eval()
    example = contract.example()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    shapes: dict[str, Any] = {"z": {0: batch}}
    if loaded.num_classes:
        shapes["labels"] = {0: batch}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        weights = {k: v.detach().contiguous().cpu() for k, v in loaded.model.state_dict().items()}
        save_file(weights, str(path), metadata={"format": "pt", "gankit": __version__})
    elif fmt == "pt2":
        exported = torch.export.export(program, example, dynamic_shapes=shapes)
        torch.export.save(exported, str(path))
    elif fmt == "onnx":
        names = ["z", "labels"] if loaded.num_classes else ["z"]
        with warnings.catch_warnings():  # z's and labels' batch axes are one: it says so
            warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
            torch.onnx.export(
                program,
                example,
                str(path),
                input_names=names,
                output_names=["images"],
                dynamic_shapes=shapes,
                dynamo=True,
                verbose=False,
            )
    else:
        raise UsageError(f"unknown export format {fmt!r}; choose from {sorted(FORMATS)}")


def contract_of(loaded: LoadedGenerator) -> Contract:
    return Contract(loaded.config.model.latent_dim, loaded.num_classes, loaded.image_shape)


def sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def evaluate_export(loaded: LoadedGenerator, device: str) -> dict[str, Any]:
    """A fresh evaluation (5,000 samples, seed 0) and the real-data floor, or why there is
    none."""
    from gankit.evaluation import STACKED, evaluate
    from gankit.metrics.features import EXTRACTORS

    data = loaded.config.data
    if data.dataset not in EXTRACTORS and data.dataset != STACKED:
        return {
            "note": f"Not evaluated: dataset {data.dataset!r} has no domain classifier "
            f"({', '.join(sorted(EXTRACTORS))} have one; {STACKED} is judged by its modes)"
        }
    found = evaluate(loaded, n=EVAL_SAMPLES, seed=EVAL_SEED, device=device)
    return {"result": found.result, "floor": found.floor, "floor_what": found.floor_what}


def export_run(
    run: str | Path,
    fmt: str,
    out: str | Path,
    *,
    checkpoint: str = "latest",
    overwrite: bool = False,
    evaluate: bool = True,
    device: str = "cpu",
) -> Path:
    """Exports the run's generator to `out` (see the module docstring); returns `out`."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose from {sorted(FORMATS)}")
    if ExportFolder(run).is_export():
        raise UsageError(f"{str(run)!r} is an export, not a run: export from the run folder")
    require_extras(fmt)
    loaded = load_generator(run, checkpoint, device)  # a run without checkpoints: exit 2 here
    loaded.model.cpu().eval()
    folder = ExportFolder(out)
    folder.create(overwrite)
    contract = contract_of(loaded)
    manifest = {
        "gankit_export": 1,
        "complete": False,
        "format": fmt,
        "file": FORMATS[fmt],
        "gankit_version": __version__,
        "num_classes": loaded.num_classes,
        "latent_dim": contract.latent_dim,
        "image_shape": list(contract.image_shape),
        "source": {
            "run": str(Path(run).resolve()),
            "checkpoint": str(loaded.checkpoint.resolve()),
            "step": loaded.step,
            "ema": loaded.ema,
        },
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    folder.write_manifest(manifest)
    model_path = folder.path / FORMATS[fmt]
    write_model(loaded, fmt, model_path)
    (folder.path / "config.json").write_text(json.dumps(loaded.config.to_dict(), indent=2) + "\n")
    z = torch.randn(100, contract.latent_dim, generator=torch.Generator().manual_seed(0))
    labels = balanced_labels(100, loaded.num_classes) if loaded.num_classes else None
    with torch.no_grad():
        grid = loaded.model(z, labels)
    save_grid(grid, folder.path / "samples.png", ncol=10)
    loaded.model.to(device)
    evaluation = {"note": "Not evaluated (--no-eval)"}
    if evaluate:
        evaluation = evaluate_export(loaded, device)
    loaded.model.cpu()
    (folder.path / "model_card.md").write_text(model_card(loaded, fmt, contract, evaluation))
    manifest.update(
        complete=True,
        contract=contract.to_dict(),
        sha256=sha256(model_path),
        evaluation=evaluation.get("result"),
        evaluation_note=evaluation.get("note"),
    )
    folder.write_manifest(manifest)
    return folder.path


# --- the model card ------------------------------------------------------------------------------

CARD_HIDDEN = ("density", "intra_fid")  # in evaluation.json, not on the card


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def usage(fmt: str, contract: Contract) -> str:
    n, latent, classes = 16, contract.latent_dim, contract.num_classes
    if fmt == "onnx":
        feed = '{"z": z, "labels": labels}' if classes else '{"z": z}'
        labels = f"labels = np.arange({n}, dtype=np.int64) % {classes}\n" if classes else ""
        return (
            "```python\nimport numpy as np\nimport onnxruntime as ort\n\n"
            'session = ort.InferenceSession("generator.onnx")\n'
            f"z = np.random.default_rng(0).standard_normal(({n}, {latent})).astype(np.float32)\n"
            f"{labels}images = session.run(None, {feed})[0]  # ({n}, "
            f"{', '.join(map(str, contract.image_shape))}) in [-1, 1]\n"
            "pixels = np.round((images + 1) * 127.5).astype(np.uint8)\n```\n"
        )
    if fmt == "pt2":
        args = f"z, torch.arange({n}) % {classes}" if classes else "z"
        return (
            "```python\nimport torch\n\n"
            'generator = torch.export.load("generator.pt2").module()\n'
            f"z = torch.randn({n}, {latent})\n"
            f"images = generator({args})  # in [-1, 1]\n```\n"
        )
    return (
        "A safetensors file holds the weights alone. With gankit:\n\n"
        "```python\nimport gankit\n\n"
        'loaded = gankit.load_generator("DIR")  # this folder\n'
        f"images = gankit.sample(loaded.model, {n}"
        + (f", labels=torch.arange({n}) % {classes}" if classes else "")
        + ')\n```\n\nWithout gankit, `safetensors.torch.load_file("generator.safetensors")` '
        "gives the tensors, to load into the architecture described above; for a graph that "
        "runs without gankit, export with `--format onnx` or `--format pt2`.\n"
    )


def model_card(
    loaded: LoadedGenerator, fmt: str, contract: Contract, evaluation: dict[str, Any]
) -> str:
    config, model = loaded.config, loaded.config.model
    classes = contract.num_classes
    kind = f"conditional ({classes} classes)" if classes else "unconditional"
    width = (
        f"base width {model.channels}"
        if model.architecture != "mlp"
        else f"hidden widths {model.g_hidden}"
    )
    lines = [
        f"# {config.preset or 'gankit'} generator ({fmt})",
        "",
        f"Exported by gankit {__version__} from `{loaded.checkpoint.name}` (iteration "
        f"{loaded.step}) of a run of preset `{config.preset or 'custom'}`"
        + (", EMA weights." if loaded.ema else "."),
        "",
        "## Model",
        "",
        f"- architecture: `{model.architecture}` generator, {width}, latent size "
        f"{model.latent_dim}",
        f"- conditioning: `{model.conditioning}`, {kind}",
        f"- loss `{config.train.loss}`, batch {config.train.batch_size}, Adam lr "
        f"{config.optim.lr_g:g} (G) / {config.optim.lr_d:g} (D)",
        "",
        "## Input contract",
        "",
        f"- `z`: float32 (N, {contract.latent_dim}), standard normal N(0, 1); N from 1 to "
        f"{MAX_BATCH:,}",
    ]
    if contract.num_classes:
        lines.append(
            f"- `labels`: int64 (N,), each in 0..{contract.num_classes - 1} (not checked by the "
            "exported graph: an index outside it is an error or garbage)"
        )
    lines += [
        f"- output `images`: float32 (N, {', '.join(map(str, contract.image_shape))}) in "
        "[-1, 1]; pixels = round((x + 1) * 127.5) as uint8",
        "",
        "## Training",
        "",
        f"- data: `{config.data.dataset}` ({config.data.split} split)",
        f"- iterations: {loaded.step} of {config.train.iterations} planned, seed "
        f"{config.train.seed}",
        "",
        "## Evaluation",
        "",
    ]
    if "result" in evaluation:
        result, floor = evaluation["result"], evaluation["floor"]
        lines += [
            f"A fresh evaluation at export: {EVAL_SAMPLES:,} samples (balanced labels), noise "
            f"seed {EVAL_SEED}, features `{result['extractor']}` (a domain classifier, not "
            f"Inception), reference `{result['reference']}`; the real-data floor is "
            f"{evaluation['floor_what']}, scored the same way.",
            "",
            "| figure | this generator | real-data floor |",
            "|---|---|---|",
        ]
        for key, label, _ in figures_for(result):
            if key not in CARD_HIDDEN and result.get(key) is not None:
                lines.append(f"| {label} | {_fmt(result[key])} | {_fmt(floor.get(key))} |")
        lines += [
            "",
            f"The copy rate is the share of samples nearer a training image than "
            f"{result['copy_percentile']:g}% of training images are to their nearest other one:"
            f" about {result['copy_percentile'] / 100:g} for new images, 1 for copies.",
        ]
    else:
        lines.append(evaluation["note"] + ".")
    lines += ["", "## Use from Python", "", usage(fmt, contract)]
    return "\n".join(lines) + "\n"
