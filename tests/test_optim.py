import copy

import pytest
import torch
from torch import nn

from gankit.training import optim
from gankit.training.optim import Adam

HYPER = dict(lr=1e-2, betas=(0.5, 0.999), eps=1e-8)


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def run(net, opt, steps, skip_first_at=(), seed=1):
    """`steps` updates with seeded gradients; at the steps in `skip_first_at` the first layer
    has no gradient (torch.optim skips such parameters)."""
    g = torch.Generator().manual_seed(seed)
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        net(torch.randn(4, 6, generator=g)).square().mean().backward()
        if i in skip_first_at:
            net[0].weight.grad = net[0].bias.grad = None
        opt.step()


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_matches_torch_fused_adam_exactly(weight_decay):
    mine, ref = model(), model()
    opt = Adam(mine.parameters(), weight_decay=weight_decay, **HYPER)
    opt_ref = torch.optim.Adam(ref.parameters(), weight_decay=weight_decay, fused=True, **HYPER)
    run(mine, opt, 5, skip_first_at={0, 3})
    run(ref, opt_ref, 5, skip_first_at={0, 3})
    for a, b in zip(mine.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    ours, theirs = opt.state_dict(), opt_ref.state_dict()
    assert ours["param_groups"] == theirs["param_groups"]
    assert ours["state"].keys() == theirs["state"].keys()
    for i, state in theirs["state"].items():
        for key, value in state.items():
            assert torch.equal(ours["state"][i][key], value), (i, key)
    assert ours["state"][0]["step"].item() == 3  # the first layer missed 2 of 5 steps


def test_state_dicts_load_both_ways_and_resume_exactly():
    straight = model()
    opt = Adam(straight.parameters(), **HYPER)
    run(straight, opt, 6)
    # 3 steps with torch.optim, then 3 with gankit's Adam from its state dict
    net = model()
    opt_torch = torch.optim.Adam(net.parameters(), fused=True, **HYPER)
    run(net, opt_torch, 3)
    resumed = Adam(net.parameters(), lr=1.0)  # hyperparameters come from the state dict
    resumed.load_state_dict(copy.deepcopy(opt_torch.state_dict()))
    assert resumed.lr == HYPER["lr"] and resumed.betas == HYPER["betas"]
    g = torch.Generator().manual_seed(1)
    for _ in range(3):  # replay the seeded gradients of steps 0-2, then take steps 3-5
        torch.randn(4, 6, generator=g)
    for _ in range(3):
        resumed.zero_grad()
        net(torch.randn(4, 6, generator=g)).square().mean().backward()
        resumed.step()
    for a, b in zip(net.parameters(), straight.parameters(), strict=True):
        assert torch.equal(a, b)
    back = torch.optim.Adam(model().parameters(), fused=True, **HYPER)
    back.load_state_dict(resumed.state_dict())  # and back into torch.optim
    assert back.state_dict()["state"][0]["step"].item() == 6


def test_falls_back_to_torch_optim_where_the_fused_kernel_cannot_run(monkeypatch):
    monkeypatch.setattr(optim, "fused_kernel_supports", lambda params: False)
    fallback_net, fused_net = model(), model()
    opt = Adam(fallback_net.parameters(), **HYPER)
    assert isinstance(opt.fallback, torch.optim.Adam)
    run(fallback_net, opt, 5)
    run(fused_net, torch.optim.Adam(fused_net.parameters(), fused=True, **HYPER), 5)
    for a, b in zip(fallback_net.parameters(), fused_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # for-loop vs fused rounding
    assert opt.state_dict()["state"][0]["step"].item() == 5


def test_fused_kernel_support_needs_one_device_and_dtype():
    assert optim.fused_kernel_supports([torch.zeros(2), torch.zeros(3)])
    assert not optim.fused_kernel_supports([torch.zeros(2), torch.zeros(3, dtype=torch.float64)])
    assert not optim.fused_kernel_supports([torch.zeros(2, dtype=torch.int64)])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([], lr=1e-3)
    opt = Adam(model().parameters(), **HYPER)
    state = torch.optim.Adam(nn.Linear(2, 2).parameters(), lr=1e-3).state_dict()
    with pytest.raises(ValueError, match="one group of 4"):
        opt.load_state_dict(state)


def test_state_of_another_shape_is_refused():
    torch.manual_seed(0)
    other = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))  # last layer 4 wide
    opt_other = Adam(other.parameters(), **HYPER)
    run(other, opt_other, 1)
    opt = Adam(model().parameters(), **HYPER)
    with pytest.raises(ValueError, match=r"parameter 2 has shape \(4, 5\)"):
        opt.load_state_dict(opt_other.state_dict())
