"""Domain classifiers: small CNNs whose penultimate layer is the feature space of the metrics.

Inception-v3 features are made for 299x299 photographs; on 28x28 digits a classifier trained
on the domain itself is the meaningful judge (as TF-GAN's MNIST "Fréchet classifier distance").
Every result names its extractor (e.g. "mnist-cnn"), so it is never mistaken for Inception FID.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gankit.data import cache_dir
from gankit.errors import MissingFileError, UsageError

logger = logging.getLogger(__name__)

FEATURE_DIM = 128
# dataset -> (extractor name, shipped weights file). The `mnist` extractor uses the classifier
# trained on `mnist-sample` until a user retrains it on full MNIST (`gankit classifier train`).
EXTRACTORS = {
    "mnist-sample": ("mnist-cnn", "mnist-sample.pt"),
    "mnist": ("mnist-cnn", "mnist-sample.pt"),
    "fashion-mnist": ("fashion-mnist-cnn", "fashion-mnist.pt"),
}


class DomainClassifier(nn.Module):
    """1x28x28 images in [-1, 1] -> 128-d features -> class logits.

    Three conv blocks (32, 64, 128 channels, BatchNorm, ReLU, 2x2 max-pool), then a 128-unit
    fully connected layer whose ReLU output is the feature vector.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]

        self.conv = nn.Sequential(*block(in_channels, 32), *block(32, 64), *block(64, 128))
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(128 * 3 * 3, FEATURE_DIM), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) -> (N, 128)."""
        return self.embed(self.conv(images))  # conv: (N, 128, 3, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def folded(self) -> DomainClassifier:
        """A copy for inference, in eval mode, with each BatchNorm folded into the convolution
        before it (`torch.nn.utils.fuse_conv_bn_eval`): the same features up to float rounding
        (about 1e-6 of their scale), 1.4x faster on 2 AMD EPYC cores (403 against 287 ms per
        1,000 images, alternated in one process: the BatchNorm pass over every activation was a
        quarter of the time; `bench_evaluate.py` times the whole evaluation)."""
        model = copy.deepcopy(self).eval()
        layers: list[nn.Module] = []
        for layer in model.conv:
            if isinstance(layer, nn.BatchNorm2d):
                layers[-1] = torch.nn.utils.fuse_conv_bn_eval(layers[-1], layer)
            else:
                layers.append(layer)
        model.conv = nn.Sequential(*layers)
        return model


@dataclass
class Extractor:
    """A loaded domain classifier and what identifies it.

    Attributes:
        name: e.g. "mnist-cnn", or "inception"; results carry it.
        model: the classifier (its BatchNorms folded, `DomainClassifier.folded`) or the
            FID-Inception network, in eval mode.
        weights_id: first 12 hex digits of the weights file's sha256 (keys the stats cache).
        path: the weights file.
        info: what the weights file says of itself (dataset, held-out accuracy, recipe).
    """

    name: str
    model: nn.Module
    weights_id: str
    path: Path
    info: dict

    @property
    def key(self) -> str:
        return f"{self.name}-{self.weights_id}"

    @property
    def classifies(self) -> bool:
        """Whether it gives class logits (the domain classifiers) or features only (Inception)."""
        return isinstance(self.model, DomainClassifier)


def user_weights_path(dataset: str) -> Path:
    """Where `gankit classifier train` puts a user's own classifier for `dataset`."""
    return cache_dir() / "classifiers" / f"{dataset}.pt"


def default_weights_path(dataset: str) -> Path:
    """A user's retrained classifier if there is one, else the weights shipped in the package."""
    if dataset not in EXTRACTORS:
        raise UsageError(
            f"no domain classifier for dataset {dataset!r}; the metrics know {sorted(EXTRACTORS)}"
        )
    user = user_weights_path(dataset)
    if user.is_file():
        return user
    shipped = resources.files("gankit").joinpath("weights", EXTRACTORS[dataset][1])
    return Path(str(shipped))


def load_extractor(
    dataset: str, weights: str | Path | None = None, device: str = "cpu"
) -> Extractor:
    """Loads the domain classifier of `dataset` (or the given weights file)."""
    path = Path(weights) if weights is not None else default_weights_path(dataset)
    if not path.is_file():
        raise MissingFileError(
            f"classifier weights {str(path)!r} not found; train them with "
            f"`gankit classifier train --dataset {dataset}`"
        )
    raw = path.read_bytes()
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = DomainClassifier(payload["num_classes"])
        model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise UsageError(f"classifier weights {str(path)!r} cannot be loaded: {error}") from error
    # channels-last halves CPU inference time here (oneDNN convolutions and pooling prefer it)
    model = model.folded().to(device, memory_format=torch.channels_last)
    name = payload.get("extractor", EXTRACTORS.get(dataset, (f"{dataset}-cnn",))[0])
    digest = hashlib.sha256(raw).hexdigest()[:12]
    return Extractor(name, model, digest, path, payload.get("info", {}))


def inception_weights_path() -> Path:
    """Where gankit looks for the FID-Inception weights when `--weights` is not given."""
    from gankit.metrics.inception import WEIGHTS_FILE

    return cache_dir() / "weights" / WEIGHTS_FILE


def load_inception(weights: str | Path | None = None, device: str = "cpu") -> Extractor:
    """The FID-Inception network with pytorch-fid's weights file (never downloaded here: the
    error says where to get it and where to put it)."""
    from gankit.metrics.inception import WEIGHTS_URL, FIDInceptionV3

    path = Path(weights) if weights is not None else inception_weights_path()
    if not path.is_file():
        raise MissingFileError(
            f"FID-Inception weights {str(path)!r} not found. Download them from {WEIGHTS_URL} "
            f"and put them at {inception_weights_path()} (or pass --weights PATH)"
        )
    model = FIDInceptionV3()
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise UsageError(
            f"FID-Inception weights {str(path)!r} cannot be loaded: {error}"
        ) from error
    model.to(device, memory_format=torch.channels_last).eval()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return Extractor("inception", model, digest, path, {"weights": path.name})


def as_float_images(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [-1, 1]; float tensors pass through."""
    if isinstance(pixels, torch.Tensor) and pixels.is_floating_point():
        return pixels
    array = torch.as_tensor(np.asarray(pixels))
    if array.ndim == 3:
        array = array.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    return array.float() / 127.5 - 1.0


@torch.inference_mode()
def extract(
    extractor: Extractor, pixels: np.ndarray | torch.Tensor, batch_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features (N, D) and logits (N, C), float32 on the CPU, of uint8 or [-1, 1] images;
    logits are None for Inception. Batches of 1,000 images (50 for Inception, whose 299x299
    activations take about 20 MB an image)."""
    batch_size = batch_size or (1000 if extractor.classifies else 50)
    device = next(extractor.model.parameters()).device
    features, logits = [], []
    for start in range(0, len(pixels), batch_size):
        images = as_float_images(pixels[start : start + batch_size]).to(device)
        images = images.contiguous(memory_format=torch.channels_last)
        feats = extractor.model.features(images)
        features.append(feats.float().cpu())
        if extractor.classifies:
            logits.append(extractor.model.head(feats).cpu())
    return torch.cat(features), torch.cat(logits) if logits else None
