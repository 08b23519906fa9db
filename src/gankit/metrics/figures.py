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
