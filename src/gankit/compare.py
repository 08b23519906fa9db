"""`gankit compare RUN RUN [...]`: a side-by-side study of 2 to 8 runs, as one self-contained
HTML page (`compare.html`, images embedded, opens offline) and a Markdown summary
(`compare.md`).

What differs in their configurations; each run's latest evaluation beside the real-data floor,
the best value of each figure marked; the judge's figures and the losses overlaid, against
iterations and against wall-clock seconds; the fixed-noise grids side by side at the iterations
the runs share, under a slider; and the conditional accuracy of each class. Runs are read as
`gankit report` reads them (no lock: a run being trained can be compared).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gankit.checkpoint import load_checkpoint
from gankit.config import flatten
from gankit.errors import UsageError
from gankit.evaluation import STACKED, evaluate
from gankit.metrics.features import EXTRACTORS
from gankit.metrics.figures import FIGURES as ALL_FIGURES
from gankit.metrics.figures import MODE_FIGURES
from gankit.run import RunFolder
from gankit.visuals import progress_frames

MIN_RUNS, MAX_RUNS = 2, 8
# key, label, True when lower is better
FIGURES = [f for f in ALL_FIGURES if f[0] not in ("is", "classes_covered", "intra_fid")]
FIGURES += list(MODE_FIGURES)
CURVES = [("fid", "FID", True), ("cond_acc", "conditional accuracy", False),
          ("recall", "recall", False), ("modes", "modes", False)]  # fmt: skip
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child{
text-align:left}td.best{font-weight:bold;background:#e6f4ea}img{max-width:100%;height:auto;
image-rendering:pixelated}.grids{display:flex;flex-wrap:wrap;gap:12px}.grids figure{margin:0;
flex:1 1 160px;min-width:0}.note{color:#666;font-size:90%}code{overflow-wrap:anywhere}"""


@dataclass
class Run:
    """What the page shows of one run."""

    label: str
    folder: RunFolder
    config: dict[str, Any]
    rows: list[dict[str, Any]]
    evaluation: dict[str, Any] | None
    image_shape: tuple[int, ...]

    @property
    def dataset(self) -> str:
        return self.config["data"]["dataset"]


def judge_of(dataset: str) -> str | None:
    """The judge that scores a dataset's images (runs compared must share it), or None."""
    if dataset == STACKED:
        return "mnist-cnn, per channel"
    return EXTRACTORS[dataset][0] if dataset in EXTRACTORS else None


def read_run(path: str | Path, label: str) -> Run:
    folder = RunFolder(path)
    if not folder.is_run():
        raise UsageError(f"{str(path)!r} is not a gankit run folder (no .gankit-run or config)")
    latest = folder.latest_readable()
    if latest is None:
        raise UsageError(f"run {str(path)!r} has no checkpoint yet: nothing to compare")
    shape = tuple(load_checkpoint(latest[0]).image_shape)
    return Run(
        label, folder, folder.read_config(), folder.metrics(), folder.read_evaluation(), shape
    )


def check_comparable(runs: list[Run]) -> None:
    if not MIN_RUNS <= len(runs) <= MAX_RUNS:
        raise UsageError(f"compare takes {MIN_RUNS} to {MAX_RUNS} runs, got {len(runs)}")
    first = runs[0]
    for run in runs[1:]:
        if run.image_shape != first.image_shape:
            raise UsageError(
                f"runs {first.label} and {run.label} draw images of different shapes "
                f"({first.image_shape} and {run.image_shape}): no judge can score both"
            )
        if judge_of(run.dataset) != judge_of(first.dataset):
            raise UsageError(
                f"runs {first.label} ({first.dataset}) and {run.label} ({run.dataset}) are judged "
                f"by different classifiers ({judge_of(first.dataset)}, {judge_of(run.dataset)})"
            )


def evaluate_missing(runs: list[Run], n: int | None, seed: int) -> list[str]:
    """Evaluates the runs without an evaluation, all with the same n and seed (and records
    it in each run folder); returns the labels evaluated."""
    todo = [r for r in runs if r.evaluation is None]
    if judge_of(runs[0].dataset) is None:
        return []
    for run in todo:
        evaluate(run.folder.path, n=n, seed=seed)
        run.evaluation = run.folder.read_evaluation()
    return [r.label for r in todo]


def config_differences(runs: list[Run]) -> list[tuple[str, list[Any]]]:
    """(dotted key, one value per run) for each key whose values differ; the recorded plan of a
    budget (measured, not chosen) left out."""
    flat = [flatten(r.config) for r in runs]
    keys = sorted(set().union(*flat))
    found = []
    for key in keys:
        values = [f.get(key) for f in flat]
        if key.startswith("plan.") or all(v == values[0] for v in values):
            continue
        found.append((key, values))
    return found


def best_runs(values: list[float | None], lower: bool) -> set[int]:
    """The positions of the best value (every run that ties it; none when no run has one)."""
    known = [v for v in values if v is not None]
    if not known:
        return set()
    best = min(known) if lower else max(known)
    return {i for i, v in enumerate(values) if v == best}


def figures_table(runs: list[Run]) -> tuple[list[str], list[list[Any]], list[set[int]]]:
    """(row labels, values per row (one per run, then the floor), best runs per row). The floor
    of each figure is the first run's that has it (an unconditional run's has no accuracy)."""
    labels, rows, best = [], [], []
    floors = [r.evaluation["floor"] for r in runs if r.evaluation and r.evaluation.get("floor")]
    for key, label, lower in FIGURES:
        values = [((r.evaluation or {}).get("result") or {}).get(key) for r in runs]
        if all(v is None for v in values):
            continue
        floor = next((f[key] for f in floors if f.get(key) is not None), None)
        labels.append(f"{label} ({'lower' if lower else 'higher'} is better)")
        rows.append([*values, floor])
        best.append(best_runs(values, lower))
    return labels, rows, best


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def elapsed_at(rows: list[dict[str, Any]], step: int) -> float | None:
    """Wall-clock seconds of training at `step`: the last logged row at or before it."""
    seen = [r["elapsed_s"] for r in rows if "elapsed_s" in r and r["step"] <= step]
    return seen[-1] if seen else None


def curve_figures(runs: list[Run]) -> list[tuple[str, str]]:
    """(title, PNG data URI) of the overlaid curves."""
    from matplotlib.figure import Figure

    shown = []
    evaluated = [(r, [x for x in r.rows if x.get("kind") == "eval"]) for r in runs]
    keys = [c for c in CURVES if any(x.get(c[0]) is not None for _, e in evaluated for x in e)]
    if keys:
        for axis_name in ("iteration", "wall-clock seconds"):
            fig = Figure(figsize=(8, 2.6 * len(keys)))
            axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
            for ax, (key, label, _) in zip(axes, keys, strict=True):
                for run, rows in evaluated:
                    points = [(x["step"], x[key]) for x in rows if x.get(key) is not None]
                    if axis_name != "iteration":
                        points = [(elapsed_at(run.rows, s), v) for s, v in points]
                        points = [(t, v) for t, v in points if t is not None]
                    if points:
                        ax.plot(*zip(*points, strict=True), marker="o", label=run.label)
                ax.set_ylabel(label)
                if key == "fid":
                    ax.set_yscale("log")
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
            axes[-1].set_xlabel(axis_name)
            fig.suptitle(f"The judge's figures during training, against {axis_name}")
            fig.tight_layout()
            shown.append((f"Figures against {axis_name}", _png(fig)))
    fig = Figure(figsize=(8, 5))
    ax_d, ax_g = fig.subplots(2, 1, sharex=True)
    for run in runs:
        rows = [x for x in run.rows if "d_loss" in x]
        if rows:
            ax_d.plot([x["step"] for x in rows], [x["d_loss"] for x in rows], label=run.label)
            ax_g.plot([x["step"] for x in rows], [x["g_loss"] for x in rows], label=run.label)
    ax_d.set_ylabel("D loss")
    ax_g.set_ylabel("G loss")
    ax_g.set_xlabel("iteration")
    for ax in (ax_d, ax_g):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    shown.append(("Losses (window means)", _png(fig)))
    return shown


def shared_grids(runs: list[Run]) -> tuple[list[int], list[dict[int, Path]]]:
    """The iterations at which every run drew its fixed-noise grid, and each run's grids."""
    grids = [dict(progress_frames(r.folder.path)) for r in runs]
    shared = sorted(set.intersection(*(set(g) for g in grids))) if grids else []
    return shared, grids


def grids_section(runs: list[Run]) -> str:
    steps, grids = shared_grids(runs)
    if not steps:
        return "<p>The runs share no grid iteration.</p>"
    data = {
        run.label: [
            "data:image/png;base64," + base64.b64encode(g[s].read_bytes()).decode() for s in steps
        ]
        for run, g in zip(runs, grids, strict=True)
    }
    last = len(steps) - 1
    figures = "".join(
        f'<figure><figcaption>{html.escape(r.label)}</figcaption><img class="grid" '
        f'data-run="{i}" src="{data[r.label][last]}" alt="{html.escape(r.label)} grid"></figure>'
        for i, r in enumerate(runs)
    )
    script = (
        f"const GRIDS = {json.dumps(list(data.values()))}; const STEPS = {json.dumps(steps)};"
        "const slider = document.getElementById('step');"
        "slider.addEventListener('input', () => {const k = Number(slider.value);"
        "document.getElementById('step-label').textContent = STEPS[k];"
        "document.querySelectorAll('img.grid').forEach(img => "
        "{img.src = GRIDS[Number(img.dataset.run)][k];});});"
    )
    return (
        f'<p><label>iteration <span id="step-label">{steps[last]}</span> '
        f'<input id="step" type="range" min="0" max="{last}" value="{last}" '
        f'style="width:100%;max-width:480px"></label></p><div class="grids">{figures}</div>'
        f"<script>{script}</script>"
    )


def per_class(runs: list[Run]) -> list[list[Any]]:
    """Rows (class, accuracy per run) where some run has per-class conditional accuracy."""
    values = [((r.evaluation or {}).get("result") or {}).get("cond_acc_per_class") for r in runs]
    if all(v is None for v in values):
        return []
    classes = max(len(v) for v in values if v is not None)
    return [[k, *[v[k] if v and k < len(v) else None for v in values]] for k in range(classes)]


def table_html(header: list[str], rows: list[list[Any]], best: list[set[int]] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = [f"<td>{_fmt(row[0])}</td>"]
        for j, value in enumerate(row[1:]):
            mark = best is not None and j in best[i]
            cells.append(
                f'<td class="best">{_fmt(value)} ★</td>' if mark else f"<td>{_fmt(value)}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def table_md(header: list[str], rows: list[list[Any]], best: list[set[int]] | None = None) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(rows):
        cells = [str(row[0])]
        for j, value in enumerate(row[1:]):
            text = _fmt(value)
            cells.append(f"**{text}**" if best is not None and j in best[i] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_runs(
    paths: list[str | Path],
    out: str | Path,
    *,
    evaluate_runs: bool = False,
    n: int | None = None,
    seed: int = 0,
) -> Path:
    """Writes `out/compare.html` and `out/compare.md` for 2 to 8 runs; returns the HTML path.

    Raises:
        UsageError: too few or too many runs, a folder that is not a run or has no checkpoint,
            runs whose images cannot share a judge.
    """
    names = [Path(p).name or str(p) for p in paths]
    labels = [
        name if names.count(name) == 1 else f"{name} ({i + 1})" for i, name in enumerate(names)
    ]
    if not MIN_RUNS <= len(paths) <= MAX_RUNS:
        raise UsageError(f"compare takes {MIN_RUNS} to {MAX_RUNS} runs, got {len(paths)}")
    runs = [read_run(p, label) for p, label in zip(paths, labels, strict=True)]
    check_comparable(runs)
    none_evaluated = all(r.evaluation is None for r in runs)
    evaluated = evaluate_missing(runs, n, seed) if evaluate_runs or none_evaluated else []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header = ["", *[r.label for r in runs]]
    differences = config_differences(runs)
    diff_rows = [[key, *values] for key, values in differences]
    fig_labels, fig_rows, best = figures_table(runs)
    figures_rows = [[label, *row] for label, row in zip(fig_labels, fig_rows, strict=True)]
    classes = per_class(runs)
    missing = [r for r in runs if r.evaluation is None]
    runs_rows = [[r.label, r.config.get("preset") or "-", r.dataset, _last_step(r)] for r in runs]
    notes = []
    if missing:
        paths = [html.escape(str(r.folder.path)) for r in missing]
        commands = [f"<code>gankit evaluate {path}</code>" for path in paths]
        notes.append(
            f"No evaluation yet for {', '.join(r.label for r in missing)}: "
            f"{'; '.join(commands)} adds it (or <code>gankit compare ... --evaluate</code>)."
        )
    if evaluated:
        notes.append(f"Evaluated now, with the same n and seed {seed}: {', '.join(evaluated)}.")
    sections = [
        ("Runs", table_html(["run", "preset", "dataset", "iteration"], runs_rows)),
        (
            "What differs",
            table_html(["key", *header[1:]], diff_rows)
            if diff_rows
            else "<p>The configurations are the same.</p>",
        ),
        (
            "Figures",
            table_html([*header, "real-data floor"], figures_rows, best)
            + "".join(f'<p class="note">{n}</p>' for n in notes)
            + '<p class="note">★ the best run on each figure; each run\'s latest evaluation.</p>',
        ),
    ]
    sections += [(title, f'<img src="{uri}" alt="{title}">') for title, uri in curve_figures(runs)]
    sections.append(("Fixed-noise grids", grids_section(runs)))
    if classes:
        sections.append(
            ("Conditional accuracy per class", table_html(["class", *header[1:]], classes))
        )
    body = "\n".join(f"<h2>{html.escape(t)}</h2>\n{c}" for t, c in sections)
    title = "gankit compare: " + ", ".join(html.escape(r.label) for r in runs)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' "
        f"content='width=device-width, initial-scale=1'><title>{title}</title><style>{STYLE}"
        f"</style></head><body><h1>{title}</h1>{body}</body></html>"
    )
    (out / "compare.html").write_text(page)
    markdown = [f"# {title}", "", table_md(["run", "preset", "dataset", "iteration"], runs_rows)]
    differ = table_md(["key", *header[1:]], diff_rows) if diff_rows else "The same configuration."
    markdown += ["", "## What differs", "", differ]
    figures_md = table_md([*header, "real-data floor"], figures_rows, best)
    markdown += ["", "## Figures", "", figures_md, "", "Bold: the best run on each figure."]
    if missing:
        markdown += ["", "Not evaluated: " + ", ".join(r.label for r in missing) + "."]
    if classes:
        markdown += [
            "",
            "## Conditional accuracy per class",
            "",
            table_md(["class", *header[1:]], classes),
        ]
    (out / "compare.md").write_text("\n".join(markdown) + "\n")
    return out / "compare.html"


def _last_step(run: Run) -> int | None:
    steps = [r["step"] for r in run.rows if "step" in r]
    return max(steps) if steps else None
