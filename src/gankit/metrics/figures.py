"""The figures an evaluation reports, in the order every table shows them: (key, label, True
when lower is better). A module of its own, without torch, so that the command line can name
them without loading the metric suite."""

from __future__ import annotations

FIGURES = (
    ("fid", "FID", True),
    ("kid", "KID", True),
    ("is", "IS", False),
    ("precision", "precision", False),
    ("recall", "recall", False),
    ("density", "density", False),
    ("coverage", "coverage", False),
    ("classes_covered", "classes covered", False),
    ("cond_acc", "conditional accuracy", False),
    ("intra_fid", "intra-class FID", True),
    ("copy_rate", "copy rate", True),
)
MODE_FIGURES = (  # Stacked MNIST's (metrics.modes)
    ("modes", "modes (of 1,000)", False),
    ("kl", "KL to uniform", True),
)


def figures_for(result: dict) -> tuple[tuple[str, str, bool], ...]:
    """The rows a table shows for one evaluation: Stacked MNIST's mode figures and its copy rate
    for a mode count, else FIGURES."""
    if "modes" in result:
        return (*MODE_FIGURES, ("copy_rate", "copy rate (worst channel)", True))
    return FIGURES
