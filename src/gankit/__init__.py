"""gankit: train, sample and judge GANs and conditional GANs on small image datasets."""

__version__ = "0.1.0"

from gankit.config import RunConfig, load_preset  # noqa: E402
from gankit.data import load_dataset  # noqa: E402
from gankit.sampling import load_generator, sample, save_grid, to_uint8  # noqa: E402
from gankit.training.loop import train  # noqa: E402

__all__ = [
    "RunConfig",
    "__version__",
    "load_dataset",
    "load_generator",
    "load_preset",
    "sample",
    "save_grid",
    "to_uint8",
    "train",
]
