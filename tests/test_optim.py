"""The optimizers are torch.optim's; the learning-rate schedule and its exact resume."""

import copy

import pytest
import torch
from torch import nn

from conftest import tiny_config
from gankit.checkpoint import load_checkpoint
from gankit.run import RunFolder
from gankit.training import optim
from gankit.training.loop import train
from gankit.training.state import load_optimizer_state
from launcher import Faults


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def test_adam_is_torch_optims_fused_adam_on_the_cpu():
    opt = optim.make_adam(model().parameters(), 1e-3, (0.5, 0.999), 1e-7)
    assert isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert group["fused"] is True and not group["foreach"]
    assert (group["lr"], group["betas"], group["eps"]) == (1e-3, (0.5, 0.999), 1e-7)


def test_adam_uses_foreach_where_the_fused_kernel_cannot_run(monkeypatch):
    monkeypatch.setattr(optim, "FUSED_DEVICES", ())
    opt = optim.make_adam(model().parameters(), 1e-3, (0.5, 0.999), 1e-7)
    assert opt.param_groups[0]["foreach"] is True and not opt.param_groups[0]["fused"]
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.make_adam([], 1e-3, (0.5, 0.999), 1e-7)


def test_optimizer_state_of_another_shape_is_refused_by_name():
    torch.manual_seed(0)
    other = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))  # last layer 4 wide
    opt_other = torch.optim.Adam(other.parameters())
    other(torch.randn(2, 6)).sum().backward()
    opt_other.step()
    opt = optim.make_adam(model().parameters(), 1e-3, (0.5, 0.999), 1e-7)
    with pytest.raises(ValueError, match=r"opt_g: .* parameter 2 has shape \(4, 5\)"):
        load_optimizer_state(opt, opt_other.state_dict(), "opt_g")


def test_loading_keeps_this_devices_fused_choice(monkeypatch):
    fused = optim.make_adam(model().parameters(), 1e-3, (0.5, 0.999), 1e-7)
    monkeypatch.setattr(optim, "FUSED_DEVICES", ())
    net = model()
    foreach = optim.make_adam(net.parameters(), 1e-3, (0.5, 0.999), 1e-7)
    load_optimizer_state(foreach, copy.deepcopy(fused.state_dict()), "opt_d")
    assert foreach.param_groups[0]["foreach"] is True and not foreach.param_groups[0]["fused"]


def test_lr_factor():
    assert optim.lr_factor("none", 7, 10) == 1.0
    assert [optim.lr_factor("linear", s, 4) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    # constant for the first half, then linear to 0 over the second
    half = [optim.lr_factor("linear", s, 8, 0.5) for s in range(9)]
    assert half == [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert optim.lr_factor("linear", 3, 4, 0.99) == 1.0
    assert optim.lr_factor("linear", 4, 4, 0.99) == 0.0
    with pytest.raises(ValueError, match="unknown lr_decay 'cosine'"):
        optim.lr_factor("cosine", 0, 4)


def learning_rates(run, step):
    checkpoint = load_checkpoint(RunFolder(run).checkpoint_path(step))
    return checkpoint.opt_g["param_groups"][0]["lr"], checkpoint.opt_d["param_groups"][0]["lr"]


def test_linear_decay_resumes_exactly(tmp_path, tiny_npz, monkeypatch):
    base = tiny_config(tiny_npz, iterations=6, **{"optim.lr_decay": "linear", "optim.lr_g": 1e-3})
    straight = train(base, tmp_path / "straight")
    # the update after t iterations used lr * (1 - t / 6): the last one (t = 5) lr / 6
    assert learning_rates(tmp_path / "straight", 6) == pytest.approx((1e-3 / 6, 2e-4 / 6))
    with pytest.raises(RuntimeError, match="fails at iteration 4"):  # after checkpoint 2
        train(base, tmp_path / "killed", hooks=Faults(fail_at="4"))
    resumed = train(base, tmp_path / "killed", resume=True)
    for a, b in zip(straight.generator.parameters(), resumed.generator.parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(straight.opt_d.state.values(), resumed.opt_d.state.values(), strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"])


def test_linear_decay_replans_when_a_resume_extends_the_run(tmp_path, tiny_npz):
    base = tiny_config(tiny_npz, iterations=4, **{"optim.lr_decay": "linear"})
    train(base, tmp_path / "run")
    assert learning_rates(tmp_path / "run", 4) == pytest.approx((2e-4 / 4, 2e-4 / 4))
    train(base.with_overrides({"train.iterations": 8}), tmp_path / "run", resume=True)
    # iterations 4..7 follow the schedule over the new total: the last update used lr / 8
    assert learning_rates(tmp_path / "run", 6) == pytest.approx((2e-4 * 3 / 8,) * 2)
    assert learning_rates(tmp_path / "run", 8) == pytest.approx((2e-4 / 8,) * 2)
