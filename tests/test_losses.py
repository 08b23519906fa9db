import math

import pytest
import torch
from torch.testing import assert_close

from gankit.losses import LOSSES, get_loss

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
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(big.grad).all()


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss 'wasserstein'; choose from"):
        get_loss("wasserstein")
