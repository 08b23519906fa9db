import math

import pytest
import torch
from torch.testing import assert_close

from gankit.losses import LOSSES, get_loss, rpgan_pairing

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def bce(logit, target):
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def mean(values):
    return torch.tensor(sum(values) / len(values))


def test_nonsaturating_and_minimax_by_hand():
    ns, mm = get_loss("nonsaturating"), get_loss("minimax")
    assert_close(ns.d_real(REAL), mean([bce(2.0, 1), bce(-1.0, 1)]))
    assert_close(ns.d_fake(FAKE), mean([bce(0.5, 0), bce(-3.0, 0)]))
    assert_close(ns.g(FAKE), mean([bce(0.5, 1), bce(-3.0, 1)]))
    # minimax G minimises log(1 - D(G(z)))
    d = [1 / (1 + math.exp(-v)) for v in (0.5, -3.0)]
    assert_close(mm.g(FAKE), mean([math.log(1 - p) for p in d]))


def test_hinge_and_least_squares_by_hand():
    hinge, ls = get_loss("hinge"), get_loss("least-squares")
    assert_close(hinge.d_real(REAL), mean([0.0, 2.0]))
    assert_close(hinge.d_fake(FAKE), mean([1.5, 0.0]))
    assert_close(hinge.g(FAKE), mean([-0.5, 3.0]))
    assert_close(ls.d_real(REAL), mean([0.5 * 1.0, 0.5 * 4.0]))
    assert_close(ls.d_fake(FAKE), mean([0.5 * 0.25, 0.5 * 9.0]))
    assert_close(ls.g(FAKE), mean([0.5 * 0.25, 0.5 * 16.0]))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_stable_for_extreme_logits(name):
    loss = LOSSES[name]
    big = torch.tensor([1e4, -1e4], requires_grad=True)
    total = loss.d_real(big) + loss.d_fake(big) + loss.g(big)
    if loss.relativistic:  # its terms pair a real batch with a fake one
        total = total + rpgan_pairing(big, big.flip(0)) + rpgan_pairing(big.flip(0), big)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(big.grad).all()


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss 'wasserstein'; choose from"):
        get_loss("wasserstein")


def test_wasserstein_and_smoothed_bce_by_hand():
    from gankit.losses import d_real_bce_smoothed

    wgan = get_loss("wgan-gp")
    assert_close(wgan.d_real(REAL), torch.tensor(-0.5))
    assert_close(wgan.d_fake(FAKE), torch.tensor(-1.25))
    assert_close(wgan.g(FAKE), torch.tensor(1.25))
    smoothed = d_real_bce_smoothed(REAL, 0.1)
    assert_close(smoothed, mean([0.9 * bce(v, 1) + 0.1 * bce(v, 0) for v in (2.0, -1.0)]))


def test_gradient_penalty_against_a_hand_computed_gradient():
    """D(x) = w.x is linear, so grad_x D = w everywhere and the penalty is (|w| - 1)^2."""
    from gankit.losses import gradient_penalty

    w = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)

    def critic(images, labels=None):
        return (images * w).sum((1, 2, 3))

    real, fake = torch.randn(5, 2, 1, 1), torch.randn(5, 2, 1, 1)
    penalty = gradient_penalty(critic, real, fake, None, torch.Generator().manual_seed(0))
    assert_close(penalty, torch.tensor(16.0))  # (5 - 1)^2


def test_gradient_penalty_matches_autograd_on_a_nonlinear_critic():
    from gankit.losses import gradient_penalty

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)
    )

    def critic(images, labels=None):
        return net(images).squeeze(1)

    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    penalty = gradient_penalty(critic, real, fake, None, torch.Generator().manual_seed(1))
    alpha = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(1))
    expected = []
    for i in range(6):  # one sample at a time, through torch.func
        x = alpha[i] * real[i] + (1 - alpha[i]) * fake[i]
        grad = torch.func.grad(lambda v: critic(v.unsqueeze(0)).sum())(x)
        expected.append((grad.norm() - 1) ** 2)
    assert_close(penalty, torch.stack(expected).mean())
    penalty.backward()  # differentiable w.r.t. the critic's weights (not its last bias)
    assert all(p.grad is not None for p in (net[1].weight, net[1].bias, net[3].weight))


def test_r1_penalty_by_hand():
    from gankit.losses import r1_penalty

    real = torch.randn(4, 1, 2, 2, requires_grad=True)
    logits = (real * 2.0).sum((1, 2, 3))  # grad = 2 everywhere: |grad|^2 = 4 * 4
    assert_close(r1_penalty(real, logits), torch.tensor(16.0))
