"""EMA, DiffAugment, and every architecture x conditioning x loss training without NaNs."""

import itertools
import math

import pytest
import torch

from conftest import tiny_config
from gankit.augment import cutout, diff_augment, translate
from gankit.config import RunConfig, available_presets, load_preset
from gankit.data import load_dataset
from gankit.errors import ConfigError
from gankit.losses import LOSSES
from gankit.models import ARCHITECTURES, CONDITIONING
from gankit.run import read_metrics
from gankit.training.loop import train
from gankit.training.optim import ema_decay, update_ema
from gankit.training.state import build_state
from gankit.training.step import StepOptions, train_iteration


def test_ema_update_rule():
    model, ema = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in ema.parameters()]
    update_ema(ema, model, decay=0.9)
    for new, old, target in zip(ema.parameters(), before, model.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * target.detach())


def test_ema_warm_up():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_decay(0.999, 1_000_000) == 0.999


def test_ema_rampup_caps_the_half_life_at_a_fraction_of_the_iterations_done():
    # 0.999 has a half-life of 693 iterations; with rampup 0.05, after 2,000 iterations it is
    # capped at 100: the decay is then 0.5 ** (1 / 100)
    assert ema_decay(0.999, 1999, 0.05) == pytest.approx(0.5 ** (1 / 100))
    assert ema_decay(0.999, 0, 0.05) < 1e-5  # the first update all but copies G
    assert ema_decay(0.999, 10**6, 0.05) == pytest.approx(0.999)  # the cap no longer binds
    steps = [ema_decay(0.999, step, 0.1) for step in range(0, 20_000, 100)]
    assert steps == sorted(steps)  # the horizon only grows
    with pytest.raises(ConfigError, match="train.ema_rampup"):
        RunConfig().with_overrides({"train.ema_rampup": 0.0})
    with pytest.raises(ConfigError, match="train.ema_rampup"):
        RunConfig().with_overrides({"train.ema_rampup": float("nan")})


def test_diffaugment_keeps_shapes_and_is_differentiable():
    images = torch.rand(8, 3, 32, 32, requires_grad=True)
    out = diff_augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def paper_translation(images, ratio, generator):
    """Zhao et al.'s rand_translation, element by element: out[i, :, r, c] is
    image[i, :, r + dy_i, c + dx_i] where that lies inside the image, else the background (-1).
    The shifts are drawn as the authors draw them: dy for all images, then dx, each uniform in
    [-s, s] with s = int(size * ratio + 0.5)."""
    n, _, height, width = images.shape
    sh, sw = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), generator=generator)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=generator)
    out = torch.full_like(images, -1.0)
    for i in range(n):
        for r in range(height):
            for c in range(width):
                rr, cc = r + int(dy[i]), c + int(dx[i])
                if 0 <= rr < height and 0 <= cc < width:
                    out[i, :, r, c] = images[i, :, rr, cc]
    return out, dy.flatten(), dx.flatten()


def paper_cutout(images, ratio, generator):
    """Zhao et al.'s rand_cutout, element by element: a (ch, cw) square with its centre at
    (top, left), drawn in [0, H + 1 - ch % 2) and [0, W + 1 - cw % 2), rows top - ch // 2 ..
    top - ch // 2 + ch - 1 clipped to the image, set to the background (-1)."""
    n, _, height, width = images.shape
    ch, cw = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height + (1 - ch % 2), (n, 1, 1), generator=generator).flatten()
    left = torch.randint(0, width + (1 - cw % 2), (n, 1, 1), generator=generator).flatten()
    out = images.clone()
    for i in range(n):
        r0, c0 = int(top[i]) - ch // 2, int(left[i]) - cw // 2
        for r in range(max(r0, 0), min(r0 + ch, height)):
            for c in range(max(c0, 0), min(c0 + cw, width)):
                out[i, :, r, c] = -1.0
    return out


def test_translation_follows_the_papers_formula():
    images = torch.arange(6 * 2 * 8 * 8, dtype=torch.float32).view(6, 2, 8, 8) / 1000
    shifted = translate(images, ratio=0.25, generator=torch.Generator().manual_seed(3))
    expected, dy, dx = paper_translation(images, 0.25, torch.Generator().manual_seed(3))
    assert torch.equal(shifted, expected)
    assert ((dy != 0) | (dx != 0)).any()  # these draws do move images (not only identities)


def test_cutout_follows_the_papers_formula():
    images = torch.rand(8, 2, 9, 8, generator=torch.Generator().manual_seed(1))
    for ratio in (0.5, 0.3):
        cut = cutout(images, ratio=ratio, generator=torch.Generator().manual_seed(0))
        expected = paper_cutout(images, ratio, torch.Generator().manual_seed(0))
        assert torch.equal(cut, expected)
        assert (cut == -1).any()


def test_diffaugment_reaches_real_and_fake(tmp_path, tiny_npz, monkeypatch):
    calls = []

    def spy(images, generator=None):
        calls.append(images.shape[0])
        return diff_augment(images, generator)

    config = tiny_config(tiny_npz, iterations=1).with_overrides({"train.diffaugment": True})
    options = StepOptions.from_config(config)
    options = StepOptions(**{**options.__dict__, "augment": spy})
    dataset = load_dataset(str(tiny_npz))
    state = build_state(config, dataset, torch.device("cpu"))
    train_iteration(state, dataset.images, dataset.labels, config, options)
    assert calls == [8, 8, 8]  # D's real step, D's fake step, G's step through D


COMBINATIONS = list(itertools.product(sorted(ARCHITECTURES), sorted(CONDITIONING), sorted(LOSSES)))


@pytest.mark.parametrize("architecture, conditioning, loss", COMBINATIONS)
def test_every_combination_trains_without_nans(tiny_npz, architecture, conditioning, loss):
    overrides = {
        "model.architecture": architecture,
        "model.conditioning": conditioning,
        "model.channels": 4,
        "train.loss": loss,
        "quirks.separate_d_steps": loss not in ("wgan-gp", "rpgan"),  # both need one D step
        "train.gp_weight": 10.0 if loss == "wgan-gp" else None,
        "train.ema_decay": 0.9,
        "train.diffaugment": True,
        "model.init": "dcgan" if architecture == "dcgan" else "keras",
    }
    config = tiny_config(tiny_npz, iterations=3, **overrides)
    dataset = load_dataset(str(tiny_npz))
    state = build_state(config, dataset, torch.device("cpu"))
    options = StepOptions.from_config(config)
    for _ in range(3):
        values = train_iteration(state, dataset.images, dataset.labels, config, options)
        assert torch.isfinite(values).all()
    for module in (state.generator, state.discriminator, state.generator_ema):
        assert all(torch.isfinite(p).all() for p in module.parameters())


def test_r1_and_label_smoothing_and_d_steps_run(tmp_path, tiny_npz):
    config = tiny_config(tiny_npz, iterations=2).with_overrides(
        {"train.r1_gamma": 1.0, "train.label_smoothing": 0.1, "train.d_steps": 2}
    )
    state = train(config, tmp_path / "run")
    assert all(s["step"].item() == 2 * 2 * 2 for s in state.opt_d.state.values())  # 2 its x 2 x 2


@pytest.mark.parametrize("name", available_presets())
def test_every_preset_trains_a_few_iterations(tmp_path, tiny_npz, name):
    preset = load_preset(name)
    overrides = {
        "data.dataset": str(tiny_npz),
        "train.iterations": 4,
        "train.batch_size": 4,
        "train.seed": 0,
        "schedule.log_every": 2,
        "schedule.sample_every": 4,
        "schedule.checkpoint_every": 4,
    }
    if preset.model.architecture == "mlp":
        overrides["model.g_hidden"] = [8, 8]
        overrides["model.d_hidden"] = [8] * len(preset.model.d_hidden)
    else:
        overrides["model.channels"] = 4
    config = preset.with_overrides(overrides)
    dataset = load_dataset(str(tiny_npz))
    fresh = build_state(config, dataset, torch.device("cpu"))
    z, labels = fresh.fixed_z[:4], None if fresh.fixed_labels is None else fresh.fixed_labels[:4]
    before = fresh.sampler.eval()(z, labels)
    state = train(config, tmp_path / "run")
    assert state.step == 4
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "d_loss" in r]
    assert [r["step"] for r in rows] == [2, 4]
    for key in ("d_loss", "g_loss"):  # the losses moved between the two windows
        assert math.isfinite(rows[1][key]) and rows[1][key] != rows[0][key], key
    after = state.sampler.eval()(z, labels)
    assert (after - before).abs().max() > 1e-4  # G's output changed
    trained = dict(state.generator.named_parameters())
    for name, weight in fresh.generator.named_parameters():  # and every weight of G moved
        assert not torch.equal(weight, trained[name]), name


def test_bad_combinations_are_refused(tiny_npz):
    with pytest.raises(ValueError, match="label_smoothing applies to the BCE losses"):
        tiny_config(tiny_npz, **{"train.loss": "hinge", "train.label_smoothing": 0.1})
    with pytest.raises(ValueError, match="separate_d_steps = false"):
        tiny_config(tiny_npz, **{"train.gp_weight": 10.0})
    with pytest.raises(ValueError, match="model.channels is required"):
        tiny_config(tiny_npz, **{"model.architecture": "dcgan"})


def test_bf16_autocast_trains_with_fp32_losses(tiny_npz):
    config = tiny_config(tiny_npz, iterations=2, **{"train.precision": "bf16"})
    dataset = load_dataset(str(tiny_npz))
    state = build_state(config, dataset, torch.device("cpu"))
    options = StepOptions.from_config(config)
    assert options.autocast == torch.bfloat16
    values = train_iteration(state, dataset.images, dataset.labels, config, options)
    assert values.dtype == torch.float32 and torch.isfinite(values).all()
    assert all(p.dtype == torch.float32 for p in state.generator.parameters())  # master weights


def test_compile_without_a_compiler_warns_and_runs_eagerly(tiny_npz, monkeypatch, caplog):
    from gankit.training import state as state_module

    monkeypatch.setattr(state_module.shutil, "which", lambda name: None)
    config = tiny_config(tiny_npz, iterations=1, **{"train.compile": True})
    dataset = load_dataset(str(tiny_npz))
    with caplog.at_level("WARNING"):
        state = build_state(config, dataset, torch.device("cpu"))
    assert "C++ compiler" in caplog.text
    assert (
        not hasattr(state.generator, "_compiled_call_impl")
        or state.generator._compiled_call_impl is None
    )
