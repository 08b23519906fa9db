import itertools
import math

import pytest
import torch

from gankit.config import ModelConfig, load_preset
from gankit.models import ARCHITECTURES, CONDITIONING, build_models
from gankit.models.dropout import Dropout, set_dropout_generator
from gankit.models.normalization import ConditionalBatchNorm


def count(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    "preset, g_params, d_params",
    [("seed-gan", 1_489_936, 533_505), ("seed-cgan", 1_490_936, 935_585)],
)
def test_parameter_counts_match_the_reference(preset, g_params, d_params):
    generator, discriminator = build_models(load_preset(preset).model, (1, 28, 28), 10)
    assert (count(generator), count(discriminator)) == (g_params, d_params)


def small(architecture, conditioning):
    return ModelConfig(
        architecture=architecture,
        conditioning=conditioning,
        latent_dim=8,
        g_hidden=[16, 32],
        d_hidden=[32, 16],
        d_dropout=[0.0, 0.3],
        channels=4,
        init="dcgan" if architecture == "dcgan" else "keras",
    )


CASES = list(itertools.product(sorted(ARCHITECTURES), sorted(CONDITIONING)))


def logits_of(output):
    return output[0] if isinstance(output, tuple) else output


@pytest.mark.parametrize("architecture, conditioning", CASES)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_contract(architecture, conditioning, shape, rng):
    torch.manual_seed(0)
    generator, discriminator = build_models(small(architecture, conditioning), shape, 10)
    conditional = conditioning != "none"
    labels = torch.randint(10, (6,), generator=rng) if conditional else None
    z = torch.randn(6, 8, generator=rng)
    images = generator(z, labels)
    assert images.shape == (6, *shape)
    assert images.min() >= -1 and images.max() <= 1
    output = discriminator(images, labels)
    if CONDITIONING[conditioning].classifies:
        assert isinstance(output, tuple) and output[1].shape == (6, 10)
    else:
        assert not isinstance(output, tuple)
    logits = logits_of(output)
    assert logits.shape == (6,) and torch.isfinite(logits).all()
    total = logits.sum() + (output[1].sum() if isinstance(output, tuple) else 0)
    total.backward()
    for name, p in itertools.chain(generator.named_parameters(), discriminator.named_parameters()):
        assert p.grad is not None, name
    if conditional:
        with pytest.raises(ValueError, match="conditional"):
            generator(z)
        generator.eval()
        discriminator.eval()
        for module in generator.modules():  # cBN starts label-independent (gain 1, bias 0)
            if isinstance(module, ConditionalBatchNorm):
                torch.nn.init.normal_(module.bias.weight, 0.0, 0.5)
        other = (labels + 1) % 10
        assert not torch.allclose(generator(z, labels), generator(z, other))
        if conditioning == "acgan":  # D predicts the class; it does not read labels
            torch.testing.assert_close(discriminator(images)[0], discriminator(images, labels)[0])
        else:
            with pytest.raises(ValueError, match="conditional"):
                discriminator(images)
            assert not torch.allclose(
                logits_of(discriminator(images, labels)), logits_of(discriminator(images, other))
            )
    else:
        with pytest.raises(ValueError, match="unconditional"):
            generator(z, torch.zeros(6, dtype=torch.int64))


def test_projection_ac_is_the_projection_logit_plus_class_logits_on_the_same_features():
    from gankit.config import RunConfig
    from gankit.training.step import StepOptions

    torch.manual_seed(0)
    _, discriminator = build_models(small("dcgan", "projection-ac"), (1, 28, 28), 10)
    discriminator.eval()
    images, labels = torch.rand(5, 1, 28, 28) * 2 - 1, torch.arange(5)
    features = {}
    discriminator.head.register_forward_hook(lambda m, args, out: features.update(h=args[0]))
    logits, classes = discriminator(images, labels)
    h, head = features["h"], discriminator.head
    projection = (head.embed(labels) * h).sum(1)
    torch.testing.assert_close(logits, head.linear(h).squeeze(1) + projection)
    torch.testing.assert_close(classes, head.classes(h))
    # training adds the class cross-entropy for both classifying heads, with acgan_weight
    for conditioning, weighted in (("projection-ac", True), ("acgan", True), ("projection", False)):
        config = RunConfig().with_overrides(
            {"model.conditioning": conditioning, "train.acgan_weight": 0.5}
        )
        assert StepOptions.from_config(config).acgan_weight == (0.5 if weighted else None)


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    config = small("dcgan", "projection")
    config.spectral_norm = True
    _, discriminator = build_models(config, (1, 28, 28), 10)
    discriminator.train()
    for _ in range(30):  # power iterations run in training-mode forward passes
        discriminator(torch.randn(4, 1, 28, 28), torch.zeros(4, dtype=torch.int64))
    linear = discriminator.head.linear
    sigma = torch.linalg.matrix_norm(linear.weight.detach(), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.02)
    conv = discriminator.net[2]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.05)


def test_dcgan_needs_sizes_divisible_by_4():
    with pytest.raises(ValueError, match="divisible by 4"):
        build_models(small("dcgan", "none"), (1, 30, 30), 10)


def test_keras_init():
    torch.manual_seed(0)
    generator, discriminator = build_models(load_preset("seed-cgan").model, (1, 28, 28), 10)
    linear = discriminator.net[0]
    bound = (6 / (784 + 512)) ** 0.5  # Glorot-uniform limit
    assert linear.weight.abs().max() <= bound and linear.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(linear.bias) == 0
    embedding = generator.condition.embedding.weight
    assert embedding.abs().max() <= 0.05
    bn = generator.net[2]
    assert (bn.momentum, bn.eps) == (0.2, 1e-3)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown model 'resnet'; choose from"):
        build_models(ModelConfig(architecture="resnet"), (1, 28, 28), 10)
    with pytest.raises(ValueError, match="unknown conditioning 'add'"):
        build_models(ModelConfig(conditioning="add"), (1, 28, 28), 10)


def test_torch_dropout_equals_nn_dropout_bit_for_bit():
    x = torch.randn(37, 53, requires_grad=True)
    torch.manual_seed(3)
    expected = torch.nn.Dropout(0.4)(x)
    torch.manual_seed(3)
    y = Dropout(0.4, "torch")(x)  # no generator set: torch's global one, as nn.Dropout
    assert torch.equal(y, expected)
    y.sum().backward()
    assert torch.equal(x.grad, (expected != 0).float() / 0.6)


def test_dropout_draws_only_from_its_own_generator():
    x = torch.randn(64, 32)
    layer = Dropout(0.4, "torch")
    layer.generator = torch.Generator().manual_seed(5)
    torch.manual_seed(0)
    global_state = torch.get_rng_state()
    a = layer(x)
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is untouched
    layer.generator = torch.Generator().manual_seed(5)
    assert torch.equal(layer(x), a)  # the stream decides the mask
    layer.generator = torch.Generator().manual_seed(6)
    assert not torch.equal(layer(x), a)


def keep_share_tolerance(p, n):
    return 5 * math.sqrt(p * (1 - p) / n)  # 5 sigma of a binomial share


@pytest.mark.parametrize("p", [0.1, 0.4, 0.75])
def test_fast_dropout_has_nn_dropouts_statistics(p):
    """The fast mask against nn.Dropout's own output: keep rate (in every position of a 64-bit
    word), the values kept elements take, independence of neighbours, and the gradient."""
    rows = 1 << 18
    ones = torch.ones(rows, 4)
    torch.manual_seed(0)
    reference = torch.nn.Dropout(p)(ones)
    layer = Dropout(p, "fast")
    layer.generator = torch.Generator().manual_seed(0)
    fast = layer(ones)
    tol = keep_share_tolerance(p, rows)
    for column in range(4):  # a biased top bit of the word would show at column 3
        fast_rate = (fast[:, column] > 0).float().mean().item()
        reference_rate = (reference[:, column] > 0).float().mean().item()
        assert abs(fast_rate - (1 - p)) < tol
        assert abs(fast_rate - reference_rate) < 2 * tol
    assert fast.unique().tolist() == pytest.approx(reference.unique().tolist())
    assert abs(fast.double().mean().item() - 1.0) < 5 * tol
    kept = fast > 0
    neighbours = (kept[:, :-1] & kept[:, 1:]).float().mean().item()
    assert abs(neighbours - (1 - p) ** 2) < 2 * tol
    x = torch.randn(37, 53, requires_grad=True)  # not a multiple of 4 elements
    y = layer(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() / (1 - p), rtol=1e-6, atol=0)
    torch.testing.assert_close(y, x.detach() * x.grad, rtol=1e-6, atol=0)


@pytest.mark.parametrize("impl", ["torch", "fast"])
def test_dropout_is_identity_in_eval_mode_and_at_rate_zero(impl):
    x = torch.randn(8, 16)
    assert torch.equal(Dropout(0.4, impl).eval()(x), x)
    assert torch.equal(Dropout(0.0, impl)(x), x)
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0, impl)
    with pytest.raises(ValueError, match="unknown dropout impl"):
        Dropout(0.4, "cudnn")


def test_presets_choose_their_dropout():
    for name in ("seed-gan", "seed-cgan"):  # the faithful presets: nn.Dropout's masks
        assert load_preset(name).model.dropout_impl == "torch"
    _, discriminator = build_models(load_preset("seed-cgan").model, (1, 28, 28), 10)
    layers = [m for m in discriminator.modules() if isinstance(m, Dropout)]
    assert [(m.p, m.impl) for m in layers] == [(0.4, "torch"), (0.4, "torch")]
    assert set_dropout_generator(discriminator, torch.Generator()) == 2
