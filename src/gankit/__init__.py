"""gankit: train, sample and judge GANs and conditional GANs on small image datasets."""

from gankit._version import __version__
from gankit.config import RunConfig, load_preset
from gankit.data import load_dataset
from gankit.evaluation import Evaluation, evaluate
from gankit.images import save_grid, to_uint8
from gankit.loading import load_generator
from gankit.sampling import sample
from gankit.training.loop import train

__all__ = [
    "Evaluation",
    "RunConfig",
    "__version__",
    "evaluate",
    "load_dataset",
    "load_generator",
    "load_preset",
    "sample",
    "save_grid",
    "to_uint8",
    "train",
]
