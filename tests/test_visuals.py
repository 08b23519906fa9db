"""Sampling tools: truncation, interpolation, class morphing, GIFs and the HTML report."""

import json

import pytest
import torch
from PIL import Image

from conftest import tiny_config
from gankit.cli import main
from gankit.loading import load_generator
from gankit.sampling import draw_noise, sample
from gankit.training.loop import train
from gankit.visuals import class_morph, interpolate, lerp, progress_gif, save_gif, slerp


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("visual")
    config = tiny_config("mnist-sample", iterations=4).with_overrides({"train.ema_decay": 0.9})
    train(config, folder / "run")
    return folder / "run"


def test_truncated_noise_stays_in_bounds_and_follows_the_truncated_normal():
    for t in (0.05, 0.5, 2.0):
        z = draw_noise(20_000, 16, torch.Generator().manual_seed(0), truncation=t)
        assert z.abs().max() <= t and z.shape == (20_000, 16)
        # the variance of N(0, 1) truncated to [-t, t]: 1 - 2 t phi(t) / (2 Phi(t) - 1)
        normal = torch.distributions.Normal(0.0, 1.0)
        tt = torch.tensor(t)
        variance = 1 - 2 * tt * normal.log_prob(tt).exp() / (2 * normal.cdf(tt) - 1)
        assert z.var().item() == pytest.approx(variance.item(), rel=0.02)
        assert abs(z.mean().item()) < 0.01 * t
    for bad in (0.0, 0.04, 2.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"truncation must be in 0.05..2.0"):
            draw_noise(2, 2, truncation=bad)


def test_slerp_and_lerp_endpoints_and_norm():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, generator=g), torch.randn(64, generator=g)
    t = torch.linspace(0, 1, 5)
    for path in (lerp(a, b, t), slerp(a, b, t)):
        torch.testing.assert_close(path[0], a)
        torch.testing.assert_close(path[-1], b, rtol=1e-5, atol=1e-5)
    # slerp keeps the norm between the ends; lerp shrinks it midway
    assert slerp(a, b, t)[2].norm() > lerp(a, b, t)[2].norm()


def test_interpolation_endpoints_equal_the_two_samples(run):
    model = load_generator(run).model
    strip = interpolate(model, 3, 7, steps=6, label=2)
    assert strip.shape == (6, 1, 28, 28) and strip.min() >= -1 and strip.max() <= 1
    label = torch.tensor([2])
    for seed, index in ((3, 0), (7, -1)):
        alone = sample(model, 1, labels=label, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(strip[index], alone[0])
    torch.testing.assert_close(strip, interpolate(model, 3, 7, steps=6, label=2))  # deterministic


def test_class_morph_endpoints_are_the_hard_classes(run):
    model = load_generator(run).model
    morph = class_morph(model, seed=5, label_a=1, label_b=8, steps=5)
    z = draw_noise(1, model.latent_dim, torch.Generator().manual_seed(5))
    for label, index in ((1, 0), (8, -1)):
        hard = sample(model, 1, labels=torch.tensor([label]), z=z)
        torch.testing.assert_close(morph[index], hard[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(morph[0], morph[-1])
    with pytest.raises(ValueError, match="outside the model's classes"):
        class_morph(model, 0, 1, 12)


def test_gifs_open_with_their_frames(tmp_path, run):
    path = save_gif(torch.rand(4, 1, 28, 28) * 2 - 1, tmp_path / "a.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.size == (112, 112)
    progress = progress_gif(run, tmp_path / "progress.gif")
    with Image.open(progress) as gif:
        assert gif.n_frames == 2  # images/2.png and images/4.png


def test_cli_interpolate_morph_and_truncation(tmp_path, run):
    strip, gif = tmp_path / "s.png", tmp_path / "s.gif"
    assert (
        main(
            [
                "interpolate",
                str(run),
                "--seeds",
                "1,2",
                "--steps",
                "5",
                "--label",
                "3",
                "--out",
                str(strip),
                "--gif",
                str(gif),
            ]
        )
        == 0
    )
    with Image.open(gif) as image:
        assert image.n_frames == 8  # there and back: 5 + 3
    assert main(["morph", str(run), "--classes", "0,9", "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").exists()
    out = tmp_path / "t.npz"
    assert main(["sample", str(run), "--n", "4", "--truncation", "0.7", "--out", str(out)]) == 0
    assert main(["interpolate", str(run), "--seeds", "1", "--out", str(strip)]) == 2
    assert main(["morph", str(run), "--classes", "0,10", "--out", str(strip)]) == 2


def test_report_is_self_contained(tmp_path, run):
    assert main(["report", str(run), "--n", "300", "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    for section in (
        "Training curves",
        "Samples, one row per class",
        "Progress (fixed noise)",
        "Evaluation",
        "real floor",
        "Memorisation check",
        "Configuration",
    ):
        assert section in page, section
    assert page.count("data:image/png;base64,") >= 3 and "data:image/gif;base64," in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert json.loads(page.split("<pre>")[1].split("</pre>")[0].replace("&quot;", '"'))["preset"]
