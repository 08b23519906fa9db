import itertools
import math

import numpy as np
import pytest
import torch

from gankit.config import ModelConfig, load_preset
from gankit.models import ARCHITECTURES, CONDITIONING, build_models
from gankit.models.layers import ConditionalBatchNorm, Dropout, dropout_mask


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
        architecture=architecture, conditioning=conditioning, latent_dim=8, g_hidden=[16, 32],
        d_hidden=[32, 16], d_dropout=[0.0, 0.3], channels=4,
        init="dcgan" if architecture == "dcgan" else "keras",
    )  # fmt: skip


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
    if conditioning == "acgan":
        assert isinstance(output, tuple) and output[1].shape == (6, 10)
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


def expected_keep(seed, shape, p):
    """The mask's keep decisions recomputed plainly: 64-bit draws from the seeded default
    generator, split into little-endian 16-bit integers, kept when (x + 32768) / 65536 < 1 - p."""
    torch.manual_seed(seed)
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    halves = np.frombuffer(words.numpy().tobytes(), dtype="<i2")[:n].astype(np.int64)
    return torch.from_numpy((halves + 32768) >= 65536 - round((1 - p) * 65536)).view(shape)


@pytest.mark.parametrize("p", [0.4, 0.1, 0.75])
def test_dropout_matches_its_definition(p):
    x = torch.randn(37, 53, requires_grad=True)  # not a multiple of 4 elements
    torch.manual_seed(3)
    y = Dropout(p)(x)
    keep = expected_keep(3, x.shape, p)
    torch.testing.assert_close(y, torch.where(keep, x / (1 - p), 0.0), rtol=1e-6, atol=0)
    y.sum().backward()
    torch.testing.assert_close(x.grad, keep.float() / (1 - p), rtol=1e-6, atol=0)


def test_dropout_rate_and_scale_are_those_of_nn_dropout():
    p, n = 0.4, 1 << 20
    torch.manual_seed(0)
    mask = dropout_mask((n // 4, 4), p)
    kept = mask > 0
    tol = 5 * math.sqrt(p * (1 - p) / (n // 4))  # 5 sigma of a binomial share
    # every position of a 64-bit word is used alike (a biased top bit would show at column 3)
    for column in range(4):
        assert abs(kept[:, column].float().mean().item() - (1 - p)) < tol
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / (1 - p))]
    assert abs(mask.double().mean().item() - 1.0) < 5 * tol
    neighbours = (kept[:, :-1] & kept[:, 1:]).float().mean().item()  # independent draws
    assert abs(neighbours - (1 - p) ** 2) < 2 * tol


def test_dropout_is_identity_in_eval_mode_and_at_rate_zero():
    x = torch.randn(8, 16)
    assert torch.equal(Dropout(0.4).eval()(x), x)
    assert torch.equal(Dropout(0.0)(x), x)
    torch.manual_seed(1)
    a = Dropout(0.4)(x)
    torch.manual_seed(1)
    assert torch.equal(Dropout(0.4)(x), a)  # the default generator's seed decides the mask
