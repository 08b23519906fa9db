"""Adam that steps through PyTorch's fused kernel directly.

Written by hand because `torch.optim.Adam(fused=True)` runs the same kernel behind about 0.2 ms
of Python bookkeeping per step (three steps per iteration: 2% of seed-cgan's step on 2 CPU
cores), and because building any `torch.optim` optimizer imports `torch._dynamo`, 2 s of every
`gankit train` process. The update is PyTorch's own (`torch._fused_adam_`, the kernel behind
`fused=True`, on CPU and CUDA); elsewhere this class hands every call to
`torch.optim.Adam`. `state_dict()` has `torch.optim.Adam`'s format, so checkpoints load into
either.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import torch

FUSED_DEVICES = ("cpu", "cuda")


class Optimizer(Protocol):
    """What the D and G steps call: this module's Adam or any `torch.optim` optimizer."""

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def step(self) -> Any: ...


class Adam:
    """Adam (Kingma & Ba 2015) with L2 weight decay, over one group of parameters."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam got an empty parameter list")
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay
        # param -> {"step", "exp_avg", "exp_avg_sq"}, filled on a parameter's first update
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self.fallback: torch.optim.Adam | None = None
        if not fused_kernel_supports(self.params):
            self.fallback = torch.optim.Adam(
                self.params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay
            )
            self.state = self.fallback.state  # type: ignore[assignment]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (as torch.optim skips the rest)."""
        if self.fallback is not None:
            self.fallback.step()
            return
        params = [p for p in self.params if p.grad is not None]
        if not params:
            return
        states = [self.state.get(p) or self._init_state(p) for p in params]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        beta1, beta2 = self.betas
        torch._fused_adam_(
            params, [p.grad for p in params], [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=self.lr,
            beta1=beta1, beta2=beta2, weight_decay=self.weight_decay, eps=self.eps,
            maximize=False,
        )  # fmt: skip

    def _init_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = {
            "step": torch.zeros((), dtype=torch.float32, device=p.device),
            "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
        }
        self.state[p] = state
        return state

    def state_dict(self) -> dict[str, Any]:
        """`torch.optim.Adam(fused=True)`'s format: state by parameter index, one group."""
        if self.fallback is not None:
            return self.fallback.state_dict()
        index = {p: i for i, p in enumerate(self.params)}
        group = {
            "lr": self.lr, "betas": self.betas, "eps": self.eps,
            "weight_decay": self.weight_decay, "amsgrad": False, "maximize": False,
            "foreach": None, "capturable": False, "differentiable": False, "fused": True,
            "decoupled_weight_decay": False, "params": list(range(len(self.params))),
        }  # fmt: skip
        state = {index[p]: dict(s) for p, s in self.state.items()}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores moments, step counts and hyperparameters (as torch.optim does) from a
        state dict of this class or of `torch.optim.Adam` with one group."""
        if self.fallback is not None:
            self.fallback.load_state_dict(state_dict)
            return
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            sizes = [len(g["params"]) for g in groups]
            raise ValueError(
                f"optimizer state has parameter groups of sizes {sizes}; "
                f"this optimizer has one group of {len(self.params)}"
            )
        group = groups[0]
        self.lr, self.betas = group["lr"], tuple(group["betas"])
        self.eps, self.weight_decay = group["eps"], group["weight_decay"]
        self.state = {}
        for i, saved in state_dict["state"].items():
            p = self.params[group["params"].index(int(i))]
            if saved["exp_avg"].shape != p.shape:
                raise ValueError(
                    f"optimizer state for parameter {i} has shape "
                    f"{tuple(saved['exp_avg'].shape)}; the parameter has {tuple(p.shape)}"
                )
            state = self._init_state(p)
            state["step"].copy_(torch.as_tensor(saved["step"]))
            state["exp_avg"].copy_(saved["exp_avg"])
            state["exp_avg_sq"].copy_(saved["exp_avg_sq"])


def fused_kernel_supports(params: list[torch.Tensor]) -> bool:
    """Whether one call of PyTorch's fused Adam kernel can update all of `params`: floating
    point tensors of one dtype on one CPU or CUDA device."""
    first = params[0]
    return (
        hasattr(torch, "_fused_adam_")
        and first.device.type in FUSED_DEVICES
        and first.is_floating_point()
        and all(p.device == first.device and p.dtype == first.dtype for p in params)
    )
