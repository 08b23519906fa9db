"""The D and G steps: what each changes, and the loop against a plain implementation."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import tiny_config
from gankit.data import load_dataset
from gankit.losses import get_loss
from gankit.models import build_models
from gankit.training.loop import train
from gankit.training.step import StepOptions, discriminator_step, generator_step, make_fakes


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed(before, module):
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


@pytest.fixture
def cgan():
    torch.manual_seed(0)
    config = tiny_config("unused").model
    generator, discriminator = build_models(config, (1, 28, 28), 10)
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    return generator, discriminator, opt_g, opt_d


def test_discriminator_step_changes_only_d(cgan, rng):
    generator, discriminator, _, opt_d = cgan
    labels = torch.randint(10, (8,), generator=rng)
    real = torch.rand(8, 1, 28, 28, generator=rng) * 2 - 1
    z = torch.randn(8, 8, generator=rng)
    g_before, d_before = snapshot(generator), snapshot(discriminator)
    fakes = make_fakes(generator, z, labels, inference_mode=True)
    options = StepOptions(get_loss("nonsaturating"), separate_d_steps=True)
    out = discriminator_step(discriminator, opt_d, real, labels, fakes, labels, options)
    assert changed(g_before, generator) == set()  # inference mode: BN moving stats untouched
    d_params = {k for k, _ in discriminator.named_parameters()}
    assert changed(d_before, discriminator) == d_params
    assert set(out) == {"d_loss", "d_acc_real", "d_acc_fake"}
    assert generator.training  # restored after the inference-mode forward
    # two optimizer steps were taken, as two Keras train_on_batch calls
    assert all(s["step"].item() == 2 for s in opt_d.state.values())


def test_fakes_in_training_mode_update_bn_statistics(cgan, rng):
    generator = cgan[0]
    before = snapshot(generator)
    make_fakes(
        generator, torch.randn(8, 8, generator=rng), torch.zeros(8, dtype=torch.int64), False
    )
    assert changed(before, generator) and all(
        "running" in k or "batches" in k for k in changed(before, generator)
    )


def test_generator_step_changes_only_g(cgan, rng):
    generator, discriminator, opt_g, _ = cgan
    g_before, d_before = snapshot(generator), snapshot(discriminator)
    labels = torch.randint(10, (8,), generator=rng)
    out = generator_step(
        generator,
        discriminator,
        opt_g,
        torch.randn(8, 8, generator=rng),
        labels,
        StepOptions(get_loss("nonsaturating")),
    )
    assert changed(d_before, discriminator) == set()
    assert all(p.grad is None for p in discriminator.parameters())  # never computed
    assert all(p.requires_grad for p in discriminator.parameters())  # unfrozen again
    assert {k for k, _ in generator.named_parameters()} <= changed(g_before, generator)
    assert out["g_loss"].ndim == 0


class PlainGenerator(nn.Module):
    """The reference G written plainly: [z * Embedding(y)] -> (Linear, LeakyReLU, BatchNorm)
    blocks -> Linear -> tanh, with Keras' BatchNorm settings."""

    def __init__(self, latent, hidden, pixels, classes, shape):
        super().__init__()
        self.embedding = nn.Embedding(classes, latent) if classes else None
        layers, width = [], latent
        for out in hidden:
            layers += [
                nn.Linear(width, out),
                nn.LeakyReLU(0.2),
                nn.BatchNorm1d(out, momentum=0.2, eps=1e-3),
            ]
            width = out
        self.net = nn.Sequential(*layers, nn.Linear(width, pixels), nn.Tanh())
        self.shape = shape

    def forward(self, z, y=None):
        h = z * self.embedding(y) if self.embedding is not None else z
        return self.net(h).view(-1, *self.shape)


class PlainDiscriminator(nn.Module):
    """The reference D: [x * Embedding(y)] -> (Linear, LeakyReLU[, Dropout]) blocks -> Linear
    -> sigmoid."""

    def __init__(self, hidden, dropout, pixels, classes):
        super().__init__()
        self.embedding = nn.Embedding(classes, pixels) if classes else None
        layers, width = [], pixels
        for out, rate in zip(hidden, dropout, strict=True):
            layers += [nn.Linear(width, out), nn.LeakyReLU(0.2)]
            layers += [nn.Dropout(rate)] if rate else []
            width = out
        self.net = nn.Sequential(*layers, nn.Linear(width, 1), nn.Sigmoid())

    def forward(self, x, y=None):
        h = x.flatten(1)
        h = h * self.embedding(y) if self.embedding is not None else h
        return self.net(h).squeeze(1)


@torch.no_grad()
def keras_init(module):
    """Keras' defaults: Dense Glorot-uniform with zero bias, Embedding U(-0.05, 0.05)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            limit = (6 / (layer.in_features + layer.out_features)) ** 0.5
            layer.weight.uniform_(-limit, limit)
            layer.bias.zero_()
        elif isinstance(layer, nn.Embedding):
            layer.weight.uniform_(-0.05, 0.05)


def plain_reference_training(config, dataset):
    """The reference algorithm written plainly, without gankit.models or gankit's steps:
    nn.Sequential networks, Keras init, nn.Dropout, sigmoid + BCELoss, for-loop Adam. Its
    random draws follow gankit's contract (weights from torch.manual_seed(seed) in
    construction order; batches, noise and labels from a generator seeded `seed`; dropout from
    the stream seeded by SeedSequence((seed, rank 0, 1))), so the two must agree parameter by
    parameter."""
    seed, quirks, model = config.train.seed, config.quirks, config.model
    torch.manual_seed(seed)
    classes = dataset.num_classes if config.conditional else 0
    pixels = math.prod(dataset.image_shape)
    G = PlainGenerator(model.latent_dim, model.g_hidden, pixels, classes, dataset.image_shape)
    D = PlainDiscriminator(model.d_hidden, model.d_dropout, pixels, classes)
    keras_init(G)
    keras_init(D)
    dropout_seed = np.random.SeedSequence([seed, 0, 1]).generate_state(1, np.uint64)[0]
    torch.manual_seed(int(dropout_seed))  # from here on, the global RNG serves nn.Dropout only
    adam = dict(betas=(config.optim.beta1, config.optim.beta2), eps=config.optim.eps, foreach=False)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.optim.lr_g, **adam)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.optim.lr_d, **adam)
    rng = torch.Generator().manual_seed(seed)
    bce = nn.BCELoss()
    B, latent = config.train.batch_size, model.latent_dim
    for _ in range(config.train.iterations):
        idx = torch.randint(len(dataset), (B,), generator=rng)
        real, y = dataset.images[idx], dataset.labels[idx] if classes else None
        z = torch.randn(B, latent, generator=rng)
        G.eval()
        with torch.no_grad():
            gen = G(z, y)
        G.train()
        for images, target in ((real, 1.0), (gen, 0.0)):
            opt_d.zero_grad()
            loss = bce(D(images, y), torch.full((B,), target))
            loss.backward()
            opt_d.step()
        if not quirks.reuse_noise:
            z = torch.randn(B, latent, generator=rng)
        y_g = torch.randint(classes, (B,), generator=rng) if classes else None
        opt_g.zero_grad()
        g_loss = bce(D(G(z, y_g), y_g), torch.ones(B))
        g_loss.backward()
        opt_g.step()
    return G, D


@pytest.mark.parametrize("preset", ["seed-gan", "seed-cgan"])
def test_loop_matches_a_plain_implementation(tmp_path, tiny_npz, preset):
    config = tiny_config(tiny_npz, preset=preset, iterations=6)
    state = train(config, tmp_path / "run")
    assert config.model.d_dropout[1] > 0 or preset == "seed-gan"  # dropout on in seed-cgan
    G, D = plain_reference_training(copy.deepcopy(config), load_dataset(str(tiny_npz)))
    # fused Adam vs for-loop Adam and softplus vs sigmoid+log differ in rounding only
    for mine, plain in ((state.generator, G), (state.discriminator, D)):
        mine_values = list(mine.state_dict().values())
        plain_values = list(plain.state_dict().values())
        assert len(mine_values) == len(plain_values)
        for i, (a, b) in enumerate(zip(mine_values, plain_values, strict=True)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"tensor {i}")


def dcgan_example_training(config, dataset):
    """PyTorch's DCGAN example loop on gankit's networks, hinge loss: one G forward per
    iteration, D's step on the detached fakes, G's step back through the same fakes. Draws in
    gankit's order (batch indices, noise, fake labels from a generator seeded `seed`)."""
    seed, B, latent = config.train.seed, config.train.batch_size, config.model.latent_dim
    torch.manual_seed(seed)
    G, D = build_models(config.model, dataset.image_shape, dataset.num_classes)
    adam = dict(betas=(config.optim.beta1, config.optim.beta2), eps=config.optim.eps, foreach=False)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.optim.lr_g, **adam)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.optim.lr_d, **adam)
    rng = torch.Generator().manual_seed(seed)
    for _ in range(config.train.iterations):
        idx = torch.randint(len(dataset), (B,), generator=rng)
        real, y = dataset.images[idx], dataset.labels[idx]
        z = torch.randn(B, latent, generator=rng)
        y_fake = torch.randint(dataset.num_classes, (B,), generator=rng)
        fake = G(z, y_fake)
        opt_d.zero_grad()
        d_loss = torch.relu(1 - D(real, y)).mean() + torch.relu(1 + D(fake.detach(), y_fake)).mean()
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        (-D(fake, y_fake).mean()).backward()
        opt_g.step()
    return G, D


def test_reused_fakes_match_the_dcgan_example_loop_with_one_g_forward(tmp_path, tiny_npz):
    config = tiny_config(
        tiny_npz, preset="cdcgan", iterations=5, **{"train.reuse_fakes": True, "model.channels": 4}
    )
    forwards = []
    import gankit.training.state as state_module

    build = state_module.build_models

    def counting_build(*args):
        generator, discriminator = build(*args)
        generator.register_forward_hook(lambda module, *_: forwards.append(module.training))
        return generator, discriminator

    state_module.build_models = counting_build
    try:
        state = train(config, tmp_path / "run")
    finally:
        state_module.build_models = build
    assert sum(forwards) == config.train.iterations  # training-mode forwards; grids use eval
    G, D = dcgan_example_training(copy.deepcopy(config), load_dataset(str(tiny_npz)))
    for mine, plain in ((state.generator, G), (state.discriminator, D)):
        for (key, a), b in zip(mine.state_dict().items(), plain.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=key)


def test_fresh_fakes_run_g_twice_an_iteration_and_train_every_weight_differently(
    tmp_path, tiny_npz, monkeypatch
):
    """Without `reuse_fakes`, G's step makes fakes of its own from fresh noise: two
    training-mode forwards an iteration (one with it), and from the first update on every
    weight of G moves differently (a loop that reused D's fakes whatever the flag would run G
    once and train the same weights)."""
    import gankit.training.state as state_module

    build, forwards = state_module.build_models, {}

    def counting_build(*args):
        generator, discriminator = build(*args)
        count = forwards.setdefault(len(forwards), [])
        generator.register_forward_hook(lambda module, *_: count.append(module.training))
        return generator, discriminator

    monkeypatch.setattr(state_module, "build_models", counting_build)
    base = tiny_config(tiny_npz, preset="cdcgan", iterations=3, **{"model.channels": 4})
    base = base.with_overrides({"quirks.g_eval_for_fakes": False})  # both in training mode
    runs = [
        train(base.with_overrides({"train.reuse_fakes": reuse}), tmp_path / str(reuse))
        for reuse in (False, True)
    ]
    assert [sum(count) for count in forwards.values()] == [2 * 3, 3]
    fresh, reused = (r.generator.state_dict() for r in runs)
    weights = [k for k in fresh if k.endswith("weight")]
    assert weights and all(not torch.equal(fresh[k], reused[k]) for k in weights)


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("cdcgan", {"model.spectral_norm": False}),
        ("cdcgan", {"model.conditioning": "projection-ac", "model.spectral_norm": False}),
        ("mlp-cgan-fixed", {"model.d_dropout": [0.0, 0.0, 0.0]}),
        ("dcgan", {"train.diffaugment": True}),  # the augmentation draws in the same order
    ],
)
def test_one_d_forward_over_both_batches_is_the_two_forwards(preset, overrides):
    """`train.joint_d_forward`: D's step on real and fake concatenated gives the losses,
    figures and updated weights of its two forwards, for a D without spectral norm or dropout
    (their random state is the only thing the order of forwards may change)."""
    from gankit.config import load_preset

    config = load_preset(preset).with_overrides(
        {"model.channels": 4, "train.batch_size": 8, **overrides}
    )
    classes = 10 if config.conditional else 0
    torch.manual_seed(0)
    _, discriminator = build_models(config.model, (1, 28, 28), classes)
    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand(8, 1, 28, 28, generator=g) * 2 - 1, torch.rand(8, 1, 28, 28) * 2 - 1
    labels = torch.randint(10, (8,), generator=g) if classes else None
    outcomes = []
    for joint in (False, True):
        options = StepOptions.from_config(config.with_overrides({"train.joint_d_forward": joint}))
        d = copy.deepcopy(discriminator)
        # SGD: Adam's first step is about the gradient's sign, which rounding flips where a
        # gradient is ~0 (one GEMM over 16 rows against two over 8 sum in other orders)
        opt = torch.optim.SGD(d.parameters(), lr=0.1)
        figures = discriminator_step(
            d, opt, real, labels, fake, labels, options, torch.Generator().manual_seed(2)
        )
        outcomes.append((figures, d.state_dict()))
    (two, d_two), (one, d_one) = outcomes
    for key in two:
        torch.testing.assert_close(one[key], two[key], rtol=1e-5, atol=1e-6, msg=key)
    for key in d_two:
        torch.testing.assert_close(d_one[key], d_two[key], rtol=1e-4, atol=1e-6, msg=key)


def test_one_d_forward_is_refused_where_it_would_change_the_step():
    from gankit.config import load_preset
    from gankit.errors import ConfigError
    from gankit.training.state import batch_coupled

    with pytest.raises(ConfigError, match="separate_d_steps = false"):
        load_preset("seed-cgan").with_overrides({"train.joint_d_forward": True})
    with pytest.raises(ConfigError, match="gradient penalty"):
        load_preset("cdcgan").with_overrides({"train.joint_d_forward": True, "train.r1_gamma": 1.0})
    generator, discriminator = build_models(load_preset("cdcgan").model, (1, 28, 28), 10)
    assert batch_coupled(generator) and not batch_coupled(discriminator)
    assert batch_coupled(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
