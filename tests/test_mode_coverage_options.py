"""Stacked MNIST's recipe options, each against a by-hand definition: PacGAN's packing,
minibatch standard deviation, and RpGAN's loss with zero-centred R1 and R2 penalties."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gankit.config import load_preset
from gankit.errors import ConfigError
from gankit.losses import get_loss, rpgan_pairing
from gankit.models.dcgan import DCGANDiscriminator, minibatch_stddev
from gankit.training.step import StepOptions, discriminator_step, generator_step


def test_minibatch_stddev_by_hand():
    h = torch.randn(8, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    out = minibatch_stddev(h, 4)
    assert out.shape == (8, 1, 2, 2)
    # groups of 4 with a stride of 8 / 4 = 2: {0, 2, 4, 6} and {1, 3, 5, 7}
    for members in ([0, 2, 4, 6], [1, 3, 5, 7]):
        values = h[members]  # (4, 3, 2, 2)
        total = 0.0
        for c in range(3):
            for y in range(2):
                for x in range(2):
                    column = [float(values[g, c, y, x]) for g in range(4)]
                    mean = sum(column) / 4
                    total += math.sqrt(sum((v - mean) ** 2 for v in column) / 4 + 1e-8)
        for i in members:
            assert torch.allclose(out[i], torch.full((1, 2, 2), total / 12), atol=1e-6)


def test_minibatch_stddev_is_zero_for_identical_inputs_and_refuses_a_ragged_batch():
    h = torch.randn(1, 4, 3, 3).expand(6, -1, -1, -1)
    assert minibatch_stddev(h, 3).max() < 1e-3  # sqrt(1e-8)
    with pytest.raises(ValueError, match="groups of 4"):
        minibatch_stddev(torch.randn(6, 2, 1, 1), 4)


def test_a_packed_d_reads_consecutive_images_as_channels():
    torch.manual_seed(0)
    d = DCGANDiscriminator((3, 28, 28), channels=4, pack=2)
    seen = []
    d.net[0].register_forward_hook(lambda module, args, out: seen.append(args[0]))
    x = torch.randn(6, 3, 28, 28)
    logits = d(x)
    assert logits.shape == (3,)
    assert seen[0].shape == (3, 6, 28, 28)
    for i in range(3):
        assert torch.equal(seen[0][i], torch.cat([x[2 * i], x[2 * i + 1]]))
    # the same weights unpacked: a conv over the concatenated pair gives the same logit
    plain = DCGANDiscriminator((6, 28, 28), channels=4)
    plain.load_state_dict(d.state_dict())
    assert torch.allclose(plain(torch.cat([x[0], x[1]])[None]), logits[:1], atol=1e-6)


def test_minibatch_std_adds_one_feature_map_before_the_head():
    torch.manual_seed(0)
    d = DCGANDiscriminator((1, 28, 28), channels=4, minibatch_std=2)
    assert d.head.linear.in_features == (4 * 4 + 1) * 7 * 7
    x = torch.randn(4, 1, 28, 28)
    assert d(x).shape == (4,)
    # the batch is coupled: changing one image changes its group member's logit
    y = x.clone()
    y[2] += 1
    moved = (d(x) - d(y)).abs()
    assert moved[0] > 0 and moved[1] == 0 and moved[3] == 0  # groups {0, 2} and {1, 3}


class Linear(nn.Module):
    """D(x) = w . x + b, whose input gradient is w."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, generator=torch.Generator().manual_seed(1)))
        self.b = nn.Parameter(torch.tensor(0.3))

    def forward(self, x, labels=None):
        return x.flatten(1) @ self.w + self.b


def rpgan_options(**kw):
    return StepOptions(loss=get_loss("rpgan"), **kw)


def test_rpgan_d_step_is_the_pairing_plus_r1_and_r2_by_hand():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(5, 1, 2, 2, generator=g), torch.randn(5, 1, 2, 2, generator=g)
    d = Linear()
    w, b = d.w.detach().clone(), d.b.detach().clone()
    opt = torch.optim.SGD(d.parameters(), lr=1.0)
    figures = discriminator_step(
        d, opt, real, None, fake, None, rpgan_options(r1_gamma=2.0, r2_gamma=4.0)
    )
    # by hand: pairing softplus(-(D(r) - D(f))) and 0.5 gamma ||w||^2 for each penalty
    w_ = w.clone().requires_grad_(True)
    b_ = b.clone().requires_grad_(True)
    r, f = real.flatten(1) @ w_ + b_, fake.flatten(1) @ w_ + b_
    pairing = torch.log1p(torch.exp(-(r - f))).mean()
    loss = pairing + 0.5 * 2.0 * (w_ @ w_) + 0.5 * 4.0 * (w_ @ w_)
    loss.backward()
    assert torch.allclose(d.w.detach(), w - w_.grad, atol=1e-6)  # one SGD step of lr 1
    assert torch.allclose(d.b.detach(), b - b_.grad, atol=1e-6)
    assert float(b_.grad) == pytest.approx(0.0, abs=1e-7)  # a pairing ignores a shared bias
    # the logged d_loss is the mean of the real and the fake terms, each holding the pairing
    expected = float(pairing.detach()) + 0.5 * (1.0 + 2.0) * float(w @ w)
    assert float(figures["d_loss"]) == pytest.approx(expected, rel=1e-5)


def test_rpgan_g_step_pairs_the_fakes_with_ds_real_logits_by_hand():
    g = torch.Generator().manual_seed(0)
    real, z = torch.randn(5, 1, 2, 2, generator=g), torch.randn(5, 4, generator=g)
    generator = nn.Sequential(nn.Linear(4, 4), nn.Unflatten(1, (1, 2, 2)))
    d = Linear()
    opt = torch.optim.SGD(generator.parameters(), lr=0.0)
    out = generator_step(
        lambda z, labels: generator(z), d, opt, z, None, rpgan_options(), real=(real, None)
    )
    with torch.no_grad():
        fake_logits, real_logits = d(generator(z)), d(real)
    expected = F.softplus(real_logits - fake_logits).mean()
    assert float(out["g_loss"]) == pytest.approx(float(expected), rel=1e-6)
    assert rpgan_pairing(fake_logits, real_logits) == pytest.approx(float(expected))
    with pytest.raises(ValueError, match="real batch"):
        generator_step(lambda z, labels: generator(z), d, opt, z, None, rpgan_options())


def test_stacked_recipe_options_train_a_dcgan(tmp_path):
    from conftest import tiny_config
    from gankit.training.loop import train

    config = tiny_config("stacked-mnist", preset="dcgan", iterations=2).with_overrides(
        {"model.channels": 4, "data.size": 64, "model.pack": 2, "model.minibatch_std": 2,
         "train.loss": "rpgan", "train.r1_gamma": 1.0, "train.r2_gamma": 1.0}
    )  # fmt: skip
    state = train(config, tmp_path / "run")
    assert state.step == 2 and state.discriminator.head.linear.in_features == 17 * 7 * 7


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model.pack": 0}, "model.pack must be an integer in 1..16"),
        ({"model.pack": 17}, "model.pack must be an integer in 1..16"),
        ({"model.pack": 2.5}, "model.pack"),
        ({"model.pack": True}, "model.pack"),
        ({"model.minibatch_std": 1}, "group size in 2..64"),
        ({"model.minibatch_std": 65}, "group size in 2..64"),
        ({"model.minibatch_std": float("nan")}, "model.minibatch_std"),
        ({"model.pack": 3}, r"batch_size \(64\) must be a multiple of model.pack \(3\)"),
        ({"model.minibatch_std": 5}, "must be a multiple of model.minibatch_std"),
        ({"model.pack": 4, "model.minibatch_std": 32}, "must divide the packed batch"),
        ({"train.r2_gamma": -1.0}, "train.r2_gamma must be >= 0"),
        ({"quirks.separate_d_steps": True, "train.loss": "rpgan"}, "separate_d_steps = false"),
    ],
)
def test_hostile_recipe_options_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_preset("dcgan").with_overrides(overrides)


def test_packing_and_minibatch_std_name_what_they_refuse():
    with pytest.raises(ConfigError, match="conv architectures, not 'mlp'"):
        load_preset("seed-gan").with_overrides({"model.pack": 2})
    with pytest.raises(ConfigError, match="for unconditional GANs"):
        load_preset("cdcgan").with_overrides({"model.pack": 2})
    with pytest.raises(ConfigError, match="mix real and fake"):
        load_preset("dcgan").with_overrides(
            {"model.minibatch_std": 4, "train.joint_d_forward": True}
        )
