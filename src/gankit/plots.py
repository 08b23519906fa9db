"""Plots of a run's metrics, drawn on `matplotlib.figure.Figure` objects.

A `Figure` made directly (not through pyplot) renders with the Agg canvas and touches no global
state: gankit never switches the backend of the process it runs in (a notebook's included).
matplotlib is imported inside the functions that draw (here and in `metrics.memorisation`), so
that training, sampling and serving start without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_losses(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """D and G loss, and D's accuracy on real and fake, against iterations."""
    rows = [r for r in rows if "d_loss" in r]  # training rows (evaluation rows have "fid")
    if not rows:
        return None
    from matplotlib.figure import Figure

    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(8, 6))
    ax_loss, ax_acc = fig.subplots(2, 1, sharex=True)
    ax_loss.plot(steps, [r["d_loss"] for r in rows], label="D loss")
    ax_loss.plot(steps, [r["g_loss"] for r in rows], label="G loss")
    ax_loss.set_ylabel("loss (window mean)")
    ax_loss.set_title(title or "Training losses")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_acc.plot(steps, [100 * r["d_acc_real"] for r in rows], label="D accuracy on real")
    ax_acc.plot(steps, [100 * r["d_acc_fake"] for r in rows], label="D accuracy on fake")
    ax_acc.set_ylabel("accuracy (%)")
    return _finish_percent_axis_and_save(fig, ax_acc, path)


def plot_metrics(rows: list[dict[str, Any]], path: str | Path) -> Path | None:
    """FID and conditional accuracy / coverage against iterations, from evaluation rows (Stacked
    MNIST's: KL to uniform and modes covered)."""
    rows = [r for r in rows if r.get("kind") == "eval"]
    if not rows:
        return None
    from matplotlib.figure import Figure

    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(8, 6))
    ax_fid, ax_acc = fig.subplots(2, 1, sharex=True)
    if "modes" in rows[-1]:  # Stacked MNIST: KL to uniform above, modes covered below
        ax_fid.plot(steps, [r["kl"] for r in rows], marker="o", label="KL to uniform")
        ax_fid.axhline(rows[-1]["kl_floor"], color="gray", ls="--", label="finite-sample floor")
        ax_fid.set_ylabel("KL(q || uniform), nats")
        ax_fid.set_yscale("log")
        ax_fid.set_title("Mode coverage during training (lower KL is better)")
        ax_fid.grid(alpha=0.3)
        ax_fid.legend()
        ax_acc.plot(steps, [r["modes"] / 10 for r in rows], marker="o", label="modes covered")
        ax_acc.set_ylabel("% of the 1,000 modes")
        return _finish_percent_axis_and_save(fig, ax_acc, path)
    fids = [float("nan") if r["fid"] is None else r["fid"] for r in rows]  # undefined: a gap
    ax_fid.plot(steps, fids, marker="o", label="FID")
    ax_fid.set_ylabel(f"FID ({rows[-1]['extractor']} features)")
    ax_fid.set_yscale("log")
    ax_fid.set_title("Quality during training (lower FID is better)")
    ax_fid.grid(alpha=0.3)
    if rows[-1].get("cond_acc") is not None:
        ax_acc.plot(
            steps, [100 * r["cond_acc"] for r in rows], marker="o", label="conditional accuracy"
        )
    ax_acc.plot(steps, [100 * r["coverage"] for r in rows], marker="s", label="coverage")
    ax_acc.plot(steps, [100 * r["recall"] for r in rows], marker="^", label="recall")
    ax_acc.set_ylabel("%")
    return _finish_percent_axis_and_save(fig, ax_acc, path)


def _finish_percent_axis_and_save(fig: Any, ax: Any, path: str | Path) -> Path:
    """Labels the shared lower axis (0-100%, iterations), then writes the figure."""
    ax.set_xlabel("iteration")
    ax.set_ylim(-2, 102)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
