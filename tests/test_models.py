import itertools

import pytest
import torch

from gankit.config import ModelConfig, load_preset
from gankit.models import ARCHITECTURES, CONDITIONING, build_models


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
        d_hidden=[32, 16], d_dropout=[0.0, 0.3],
    )  # fmt: skip


CASES = list(itertools.product(sorted(ARCHITECTURES), sorted(CONDITIONING)))


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
    logits = discriminator(images, labels)
    assert logits.shape == (6,) and torch.isfinite(logits).all()
    (logits.sum()).backward()
    for name, p in itertools.chain(generator.named_parameters(), discriminator.named_parameters()):
        assert p.grad is not None, name
    if conditional:
        with pytest.raises(ValueError, match="conditional"):
            generator(z)
        with pytest.raises(ValueError, match="conditional"):
            discriminator(images)
        generator.eval()
        discriminator.eval()
        other = (labels + 1) % 10
        assert not torch.allclose(generator(z, labels), generator(z, other))
        assert not torch.allclose(discriminator(images, labels), discriminator(images, other))
    else:
        with pytest.raises(ValueError, match="unconditional"):
            generator(z, torch.zeros(6, dtype=torch.int64))


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
