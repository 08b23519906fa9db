"""Optional FID-Inception: its wiring, with a weights file of its architecture written here
(random initialisation; the real file is pytorch-fid's and is never downloaded by tests)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_pixels, write_idx_dataset
from gankit.cli import main
from gankit.metrics.distances import kernel_distance
from gankit.metrics.features import as_float_images, inception_weights_path
from gankit.metrics.inception import FEATURE_DIM, WEIGHTS_FILE, FIDInceptionV3


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = FIDInceptionV3()
    for module in model.modules():  # He init keeps the activations' scale through 47 layers
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("weights") / WEIGHTS_FILE
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def network(weights) -> FIDInceptionV3:
    model = FIDInceptionV3()
    model.load_state_dict(torch.load(weights, weights_only=True))
    return model.eval()


@torch.inference_mode()
def test_grey_images_are_read_as_three_equal_channels_at_299(network):
    grey = as_float_images(make_pixels(2)[0])  # (2, 1, 28, 28)
    features = network.features(grey)
    assert features.shape == (2, FEATURE_DIM) and torch.isfinite(features).all()
    torch.testing.assert_close(features, network.features(grey.repeat(1, 3, 1, 1)))
    resized = torch.nn.functional.interpolate(
        grey.repeat(1, 3, 1, 1), size=(299, 299), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(features, network.features(resized), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(features[0], features[1])


def test_cli_scores_in_inception_space_with_its_own_reference(tmp_path, weights, network, capsys):
    data = write_idx_dataset(tmp_path / "mnist", n_train=20, n_test=4)
    pixels, labels = make_pixels(10, seed=5)
    samples = tmp_path / "samples.npz"
    np.savez(samples, images=pixels, labels=labels)
    args = ["evaluate", str(samples), "--dataset", "mnist", "--data-dir", str(data), "--json"]
    assert main([*args, "--extractor", "inception", "--weights", str(weights)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["extractor"] == "inception"
    assert result["is"] is None and result["cond_acc"] is None and result["copy_rate"] is None
    assert "domain classifier" in result["classifier_note"]
    # the KID is the one of the network's own features of these images and the real ones
    from gankit.data import load_dataset

    with torch.inference_mode():
        fake = network.features(as_float_images(pixels))
        real = network.features(load_dataset("mnist", "train", str(data)).images)
    order = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    kid, _ = kernel_distance(real[order], fake, generator=_after_fid_draws())
    # a near-zero difference of kernel sums of order 1: float32 features extracted in other
    # batches differ in their last bits (about 1e-7 here on an AVX-512 Xeon), so the tolerance
    # is absolute at that scale, not relative to the small result
    assert result["kid"] == pytest.approx(kid, rel=1e-4, abs=1e-6)
    # the domain classifier's figures never share its statistics
    assert main(args) == 0
    domain = json.loads(capsys.readouterr().out)
    assert domain["extractor"] == "mnist-cnn" and domain["kid"] != result["kid"]
    cached = sorted(p.name for p in (inception_weights_path().parents[1] / "reference").iterdir())
    assert any("-inception-" in name for name in cached)
    assert any("-mnist-cnn-" in name for name in cached)


def _after_fid_draws() -> torch.Generator:
    return torch.Generator().manual_seed(0)  # KID draws first from evaluate's seeded generator


def test_missing_or_foreign_weights_are_usage_errors(tmp_path, capsys):
    pixels, _ = make_pixels(4)
    samples = tmp_path / "s.npz"
    np.savez(samples, images=pixels)
    args = ["evaluate", str(samples), "--dataset", "mnist-sample", "--extractor", "inception"]
    assert main(args) == 2
    message = capsys.readouterr().err
    assert "pytorch-fid/releases" in message and str(inception_weights_path()) in message
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(3)}, foreign)
    assert main([*args, "--weights", str(foreign)]) == 2
    assert "cannot be loaded" in capsys.readouterr().err
    assert main([*args[:-1], "resnet"]) == 2  # argparse refuses an unknown extractor
