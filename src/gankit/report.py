"""`gankit report RUN`: one self-contained HTML page about a run (images embedded as data URIs,
so it opens anywhere without a network)."""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path

import torch

from gankit.data import load_dataset
from gankit.evaluation import STACKED, Evaluation, evaluate
from gankit.images import grid_png
from gankit.loading import LoadedGenerator, load_generator
from gankit.metrics.features import EXTRACTORS
from gankit.metrics.figures import figures_for
from gankit.metrics.memorisation import nearest_training_images, plot_neighbours
from gankit.metrics.suite import DEFAULT_N, DEFAULT_SEED, Evaluator
from gankit.plots import plot_losses, plot_metrics
from gankit.run import RunFolder
from gankit.sampling import balanced_labels, sample
from gankit.visuals import progress_frames, progress_gif

STYLE = """body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;
color:#222}h1{margin-bottom:0}table{border-collapse:collapse}td,th{border:1px solid #ccc;
padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}
img{max-width:100%;image-rendering:pixelated}pre{background:#f6f6f6;padding:1em;overflow:auto}
.note{color:#666;font-size:90%}"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _png(path: Path | None) -> str:
    return "" if path is None else f'<img src="{_data_uri(path.read_bytes(), "image/png")}">'


def _grid_png(images: torch.Tensor, ncol: int) -> str:
    return f'<img src="{_data_uri(grid_png(images, ncol), "image/png")}">'


def _evaluation_table(result: dict, floor: dict) -> str:
    lines = ["<table><tr><th>metric</th><th>this run</th><th>real floor</th><th></th></tr>"]
    for key, label, lower in figures_for(result):
        if result.get(key) is None:
            continue
        value, best = result[key], floor.get(key)
        fmt = (lambda v: str(v)) if isinstance(value, int) else (lambda v: f"{v:.4g}")
        better = "lower is better" if lower else "higher is better"
        best_text = "-" if best is None else fmt(best)
        lines.append(
            f"<tr><td>{label}</td><td>{fmt(value)}</td><td>{best_text}</td><td>{better}</td></tr>"
        )
    lines.append("</table>")
    return "\n".join(lines)


def _sample_sections(loaded: LoadedGenerator, run_dir: Path, tmp: Path) -> list[tuple[str, str]]:
    """The per-class grid (or a 10x10 grid) and the progress GIF."""
    rng = torch.Generator().manual_seed(0)
    if loaded.num_classes:
        labels = balanced_labels(10 * loaded.num_classes, loaded.num_classes)
        images = sample(loaded.model, len(labels), labels=labels, generator=rng)
        sections = [("Samples, one row per class", _grid_png(images, ncol=10))]
    else:
        images = sample(loaded.model, 100, generator=rng)
        sections = [("Samples", _grid_png(images, ncol=10))]
    if progress_frames(run_dir):
        gif = progress_gif(run_dir, tmp / "progress.gif").read_bytes()
        sections.append(("Progress (fixed noise)", f'<img src="{_data_uri(gif, "image/gif")}">'))
    return sections


def _evaluation_sections(loaded: LoadedGenerator, n: int, tmp: Path) -> list[tuple[str, str]]:
    """The metric table beside the real-data floor, and the memorisation check."""
    data = loaded.config.data
    if data.dataset == STACKED:  # modes and KL; the copy rate stands in for the neighbours
        found = evaluate(loaded, n=n, seed=DEFAULT_SEED)
        table = _evaluation_table(found.result, found.floor)
        return [("Mode coverage", table + _evaluation_note(found, n, "each channel: "))]
    # evaluate's own sampling and seed: the report's figures are `gankit evaluate RUN`'s
    evaluator = Evaluator.load(data.dataset, data_dir=data.data_dir)
    found = evaluate(loaded, n=n, seed=DEFAULT_SEED, evaluator=evaluator)
    result = found.result
    note = _evaluation_note(found, n)
    train = load_dataset(data.dataset, "train", data.data_dir)
    shown = found.images[torch.linspace(0, n - 1, 8).long()]
    neighbours = nearest_training_images(shown, train, evaluator.extractor)
    figure = plot_neighbours(shown, train, neighbours, tmp / "memorisation.png")
    return [
        ("Evaluation", _evaluation_table(result, found.floor) + note),
        ("Memorisation check", _png(figure)),
    ]


def _evaluation_note(found: Evaluation, n: int, features: str = "") -> str:
    result = found.result
    return (
        f'<p class="note">{n} samples; features {features}{result["extractor"]} '
        f"({result['extractor_weights']}); floor: {html.escape(found.floor_what)}.</p>"
    )


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    n: int = DEFAULT_N,
    checkpoint: str = "latest",
) -> Path:
    """Writes RUN/report.html (or `out`) and returns its path."""
    run_dir = Path(run_dir)
    loaded = load_generator(run_dir, checkpoint)
    config, rows = loaded.config, RunFolder(run_dir).metrics()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        losses = plot_losses(rows, tmp / "loss.png", title="Losses and D accuracy")
        sections = [("Training curves", _png(losses) or "<p>No metrics logged.</p>")]
        metric_plot = plot_metrics(rows, tmp / "metrics.png")
        if metric_plot:
            sections.append(("Quality during training", _png(metric_plot)))
        sections += _sample_sections(loaded, run_dir, tmp)
        if config.data.dataset in EXTRACTORS or config.data.dataset == STACKED:
            sections += _evaluation_sections(loaded, n, tmp)
        config_text = html.escape(json.dumps(config.to_dict(), indent=2))
        sections.append(("Configuration", f"<pre>{config_text}</pre>"))
    title = f"gankit run {html.escape(run_dir.name)}"
    subtitle = (
        f"preset {config.preset or '-'} &middot; {config.model.architecture} / "
        f"{config.model.conditioning} &middot; dataset {html.escape(config.data.dataset)} "
        f"&middot; iteration {loaded.step} ({loaded.checkpoint.name})"
    )
    body = "\n".join(f"<h2>{name}</h2>\n{content}" for name, content in sections)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{STYLE}</style></head><body><h1>{title}</h1><p>{subtitle}</p>{body}"
        "</body></html>"
    )
    out = Path(out) if out else run_dir / "report.html"
    out.write_text(page)
    return out
