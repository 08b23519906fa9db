import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from gankit.images import make_grid, to_uint8
from gankit.loading import load_generator
from gankit.sampling import balanced_labels, sample
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


class DigitStub(torch.nn.Module):
    """A "generator" whose class is known: for label k it returns a real mnist-sample digit k
    (the z-th one of that class, for the first coordinate z of the noise)."""

    def __init__(self, dataset):
        super().__init__()
        self.num_classes, self.latent_dim, self.image_shape = 10, 4, (1, 28, 28)
        self.by_class = [dataset.images[dataset.labels == k] for k in range(10)]

    def forward(self, z, labels):
        picks = z[:, 0].abs().mul(10).long().tolist()
        return torch.stack(
            [self.by_class[k][i] for k, i in zip(labels.tolist(), picks, strict=True)]
        )


def panels(path):
    """The image panels of a grid PNG in reading order, each downscaled to 28x28, found as the
    large connected dark regions of the picture (each panel's black background; title text
    makes only small regions), without knowing the grid's layout constants."""
    from scipy import ndimage

    pixels = np.asarray(Image.open(path).convert("L"))
    regions, count = ndimage.label(pixels < 64)
    boxes = [
        box
        for i, box in enumerate(ndimage.find_objects(regions), 1)
        if (regions[box] == i).sum() > 1000
    ]
    boxes.sort(key=lambda box: (box[0].start // 20, box[1].start))  # rows, then columns
    crops = [Image.fromarray(pixels[box]).resize((28, 28), Image.Resampling.BOX) for box in boxes]
    return torch.from_numpy(np.stack([np.asarray(c) for c in crops]))


def test_run_grids_show_one_digit_per_class(tmp_path, cgan_run):
    from gankit.data import load_dataset
    from gankit.metrics.features import as_float_images, load_extractor
    from gankit.sampling import fixed_noise_grid

    classifier = load_extractor("mnist-sample").model
    stub = DigitStub(load_dataset("mnist-sample"))
    z = torch.rand(10, 4, generator=torch.Generator().manual_seed(0))
    grid = fixed_noise_grid(stub, z, torch.arange(10), tmp_path / "grid.png")
    found = panels(grid)
    assert found.shape == (10, 28, 28)
    with torch.no_grad():
        read = classifier(as_float_images(found.numpy())).argmax(1)
    assert read.tolist() == list(range(10))  # the panel at position k shows a digit k
    shuffled = fixed_noise_grid(stub, z, torch.arange(10).flip(0), tmp_path / "flipped.png")
    with torch.no_grad():
        read = classifier(as_float_images(panels(shuffled).numpy())).argmax(1)
    assert read.tolist() == list(range(9, -1, -1))
    # the run draws its grid the same way: its fixed noise, one label per class, in order
    loaded = load_generator(cgan_run, str(cgan_run / "checkpoints" / "step_0000002.pt"))
    fixed = torch.load(cgan_run / "fixed_noise.pt", weights_only=True)
    assert fixed["labels"].tolist() == list(range(10))
    again = fixed_noise_grid(loaded.model, fixed["z"], fixed["labels"], tmp_path / "again.png")
    with Image.open(again) as a, Image.open(cgan_run / "images" / "2.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
