"""The metric maths against closed forms and independent implementations."""

import numpy as np
import prdc
import pytest
import torch
from torchmetrics.image.fid import _compute_fid

from gankit.metrics.distances import (
    density_coverage,
    frechet_distance,
    gaussian_stats,
    inception_score,
    kernel_distance,
    precision_recall,
)


def random_spd(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


def test_frechet_equal_covariances_is_squared_mean_distance():
    sigma = random_spd(6, 0)
    mu1, mu2 = np.arange(6.0), np.arange(6.0)[::-1]
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2))


def test_frechet_of_diagonal_gaussians_in_closed_form():
    # for commuting covariances: |mu1-mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    expected = 3.0 + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    got = frechet_distance(np.zeros(3), np.diag(s1), np.array([1.0, 1.0, 1.0]), np.diag(s2))
    assert got == pytest.approx(expected)


def test_frechet_matches_torchmetrics():
    mu1, mu2 = np.random.default_rng(1).normal(size=(2, 8))
    s1, s2 = random_spd(8, 2), random_spd(8, 3)
    theirs = _compute_fid(*(torch.from_numpy(x) for x in (mu1, s1, mu2, s2)))
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(float(theirs), rel=1e-6)


def test_frechet_of_singular_covariances_is_finite():
    sigma = np.zeros((4, 4))
    sigma[0, 0] = 1.0
    assert np.isfinite(frechet_distance(np.zeros(4), sigma, np.ones(4), sigma))


def test_gaussian_stats_are_float64_and_unbiased():
    features = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    mu, sigma = gaussian_stats(features)
    assert mu.dtype == np.float64 and sigma.shape == (3, 3)
    np.testing.assert_allclose(sigma, np.cov(features.double().numpy(), rowvar=False))
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_stats(torch.zeros(1, 3))


def cubic_kernel_mean(a: float, b: float, d: int) -> float:
    """E[(x.y / d + 1)^3] for independent x ~ N(a 1, I_d), y ~ N(b 1, I_d), exactly: x.y is a
    sum of d independent products x_i y_i, whose first three cumulants add up."""
    m1, m2, m3 = a * b, (1 + a * a) * (1 + b * b), (a**3 + 3 * a) * (b**3 + 3 * b)
    k1, k2, k3 = d * m1, d * (m2 - m1 * m1), d * (m3 - 3 * m2 * m1 + 2 * m1**3)
    mean, second, third = k1, k2 + k1 * k1, k3 + 3 * k2 * k1 + k1**3  # raw moments of x.y
    return third / d**3 + 3 * second / d**2 + 3 * mean / d + 1


@pytest.mark.parametrize("shift", [0.0, 0.25, 1.0])
def test_kid_is_the_population_mmd_of_two_gaussians(shift):
    """KID is unbiased: over many disjoint-ish subsets it lands within a few standard errors
    of the exact MMD^2 between N(0, I) and N(shift, I) under the cubic kernel (a biased
    estimator, a kernel without its 1 / d, or a wrong normaliser all miss by far more)."""
    d, subsets = 16, 40
    exact = (
        cubic_kernel_mean(0, 0, d)
        + cubic_kernel_mean(shift, shift, d)
        - 2 * cubic_kernel_mean(0, shift, d)
    )
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40_000, d, generator=g), torch.randn(40_000, d, generator=g) + shift
    kid, std = kernel_distance(a, b, subsets=subsets, subset_size=1000, generator=g)
    assert abs(kid - exact) < 4 * std / subsets**0.5, (kid, exact, std)


def test_kid_matches_torchmetrics():
    from torchmetrics.image.kid import poly_mmd

    from gankit.metrics.distances import _poly_mmd

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(300, 32, generator=g), torch.rand(300, 32, generator=g) + 0.1
    theirs = float(poly_mmd(a.double(), b.double()))
    assert _poly_mmd(a, b) == pytest.approx(theirs, rel=1e-4, abs=1e-6)


def test_kid_is_deterministic_with_a_generator():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 4, generator=g), torch.randn(300, 4, generator=g) + 0.3
    first = kernel_distance(a, b, 10, 100, torch.Generator().manual_seed(5))
    assert first == kernel_distance(a, b, 10, 100, torch.Generator().manual_seed(5))


def test_inception_score_extremes():
    uniform = torch.zeros(1000, 10)
    assert inception_score(uniform)[0] == pytest.approx(1.0)
    confident = torch.full((1000, 10), -50.0)
    confident[torch.arange(1000), torch.arange(1000) % 10] = 50.0
    assert inception_score(confident, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    assert 9.0 < inception_score(confident)[0] <= 10.0  # 10 random splits: not all balanced
    one_class = torch.full((1000, 10), -50.0)
    one_class[:, 3] = 50.0
    assert inception_score(one_class)[0] == pytest.approx(1.0)


def test_prdc_matches_the_reference_implementation(capsys):
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(400, 8, generator=g), torch.randn(300, 8, generator=g) * 1.3 + 0.2
    theirs = prdc.compute_prdc(real.numpy(), fake.numpy(), nearest_k=3)
    precision, recall = precision_recall(real, fake, k=3)
    density, coverage = density_coverage(real, fake, k=3)
    assert precision == pytest.approx(theirs["precision"])
    assert recall == pytest.approx(theirs["recall"])
    assert density == pytest.approx(theirs["density"])
    assert coverage == pytest.approx(theirs["coverage"])


def test_prdc_extremes():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(500, 4, generator=g)
    far = torch.randn(500, 4, generator=g) + 100.0
    assert precision_recall(real, far) == (0.0, 0.0)
    assert density_coverage(real, far) == (0.0, 0.0)
    precision, recall = precision_recall(real, real[torch.randperm(500, generator=g)])
    assert precision == 1.0 and recall == 1.0
