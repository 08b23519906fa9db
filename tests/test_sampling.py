import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from gankit.sampling import (
    balanced_labels,
    load_generator,
    make_grid,
    sample,
    to_uint8,
)
from gankit.training.loop import train


@pytest.fixture(scope="module")
def cgan_run(tmp_path_factory, module_npz):
    run = tmp_path_factory.mktemp("cgan") / "run"
    train(tiny_config(module_npz, iterations=2), run)
    return run


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory, module_npz):
    run = tmp_path_factory.mktemp("gan") / "run"
    train(tiny_config(module_npz, preset="seed-gan", iterations=2), run)
    return run


def test_balanced_labels_remainder_to_lowest_classes():
    assert torch.bincount(balanced_labels(23, 10)).tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert balanced_labels(20, 10).tolist() == sorted(list(range(10)) * 2)


def test_to_uint8_is_the_exact_mapping():
    images = torch.tensor([-1.0, -0.5, 0.0, 1.0, 2.0]).view(5, 1, 1, 1)
    assert to_uint8(images).reshape(-1).tolist() == [0, 64, 128, 255, 255]
    rgb = torch.zeros(2, 3, 4, 5)
    assert to_uint8(rgb).shape == (2, 4, 5, 3)


def test_sample_is_deterministic_and_in_range(cgan_run):
    loaded = load_generator(cgan_run)
    labels = balanced_labels(30, 10)
    a = sample(loaded.model, 30, labels=labels, generator=torch.Generator().manual_seed(1))
    b = sample(
        loaded.model, 30, labels=labels, generator=torch.Generator().manual_seed(1), batch_size=7
    )
    assert a.shape == (30, 1, 28, 28) and a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(a, b)
    c = sample(loaded.model, 30, labels=labels, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a, c)


def test_sample_label_errors(cgan_run, gan_run):
    cgan, gan = load_generator(cgan_run).model, load_generator(gan_run).model
    with pytest.raises(ValueError, match="label 10 is outside the model's classes 0..9"):
        sample(cgan, 2, labels=torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="conditional"):
        sample(cgan, 2)
    with pytest.raises(ValueError, match="unconditional"):
        sample(gan, 2, labels=torch.tensor([1, 1]))


def test_grid_with_titles():
    pixels = np.zeros((10, 28, 28), np.uint8)
    grid = make_grid(pixels, ncol=5, titles=[f"Digit: {k}" for k in range(10)])
    plain = make_grid(pixels, ncol=5)
    assert grid.size[0] == plain.size[0] and grid.size[1] > plain.size[1]
    with pytest.raises(ValueError):
        make_grid(pixels[:0], ncol=5)


def test_run_grids_show_one_digit_per_class(cgan_run):
    with Image.open(cgan_run / "images" / "2.png") as image:
        width, height = image.size
    assert width > 5 * 28 * 3 and height > 2 * 28 * 3  # 2x5 panels, scaled, titled
