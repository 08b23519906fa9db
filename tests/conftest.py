"""Shared fixtures: tiny datasets and configurations, IDX writers, seeded generators."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gankit.config import RunConfig, load_preset


def write_idx(
    path: Path, array: np.ndarray, magic: int | None = None, compress: bool = True
) -> Path:
    """Writes a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    if magic is None:
        magic = 0x0800 + array.ndim
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress and path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_pixels(n: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """n images whose class k is a bright bar at row 2k + 4 (easy to tell apart), labels k."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    pixels = rng.integers(0, 40, size=(n, size, size), dtype=np.uint8)
    for i, k in enumerate(labels):
        pixels[i, 2 * k + 4 : 2 * k + 6, 4:24] = 255
    return pixels, labels


def write_idx_dataset(folder: Path, n_train: int = 60, n_test: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        pixels, labels = make_pixels(n, seed=n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", pixels)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    pixels, labels = make_pixels(100)
    path = tmp_path / "tiny.npz"
    np.savez(path, images=pixels, labels=labels)
    return path


def tiny_config(
    dataset: Path, preset: str = "seed-cgan", iterations: int = 4, **overrides
) -> RunConfig:
    """The preset with small networks, a small batch and intervals that fit a few iterations."""
    config = load_preset(preset)
    d_layers = len(config.model.d_hidden)
    values = {
        "data.dataset": str(dataset),
        "model.g_hidden": [16, 32],
        "model.d_hidden": [32] * d_layers,
        "model.latent_dim": 8,
        "train.iterations": iterations,
        "train.batch_size": 8,
        "train.seed": 3,
        "schedule.log_every": 2,
        "schedule.sample_every": 2,
        "schedule.checkpoint_every": 2,
    }
    values.update(overrides)
    return config.with_overrides(values)


@pytest.fixture(scope="module")
def module_npz(tmp_path_factory) -> Path:
    """tiny.npz shared by a test module's trained runs."""
    pixels, labels = make_pixels(100)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, images=pixels, labels=labels)
    return path


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Reference statistics and downloads go to a temporary cache, never the user's."""
    import os

    previous = os.environ.get("GANKIT_CACHE")
    os.environ["GANKIT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("GANKIT_CACHE", None)
    else:
        os.environ["GANKIT_CACHE"] = previous


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/NAME.py as a module (its `machine` helper importable meanwhile); yields it."""
    import importlib.util
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))
