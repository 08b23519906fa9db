"""Data-parallel training on PyTorch's own engine: torch.distributed + DistributedDataParallel.

Started by `torchrun --nproc-per-node N -m gankit train ...` (or `gankit train --nproc N`), each
process reads its rank from the environment torchrun sets. Backend: gloo on the CPU, nccl on
CUDA ($GANKIT_DIST_BACKEND overrides). Semantics:
- `train.batch_size` is the global batch; each rank draws batch_size / world_size indices from its
  own random stream (seed and rank), and DDP averages the gradients, so an update equals one
  single-process update on the union of the ranks' batches (exactly so with SyncBatchNorm).
- BatchNorm keeps per-rank batch statistics unless `train.sync_bn` (SyncBatchNorm); the default
  is off because the all-reduce per BatchNorm layer costs more than it gives at these sizes.
- G's step runs D's plain module (D is frozen there), so no all-reduce is spent on D.
- Only rank 0 writes the run folder; checkpoints hold every rank's RNG states.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

TIMEOUT_S = 300  # a collective that waits longer than this fails instead of hanging


@dataclass(frozen=True)
class World:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()


def init_world(device: str) -> World:
    """Joins the process group torchrun set up (RANK, WORLD_SIZE, LOCAL_RANK); else World()."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = os.environ.get("GANKIT_DIST_BACKEND") or (
        "nccl" if device.startswith("cuda") else "gloo"
    )
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=TIMEOUT_S))
    logger.info("rank %d of %d (%s backend)", rank, size, backend)
    return World(rank, size, local_rank)


def local_device(device: str, world: World) -> str:
    """Each rank takes its own GPU (cuda -> cuda:LOCAL_RANK)."""
    if world.distributed and device == "cuda":
        return f"cuda:{world.local_rank}"
    return device


class CrossRankBatchNorm(nn.Module):
    """BatchNorm whose training statistics are those of the global batch (all ranks).

    PyTorch's SyncBatchNorm runs on CUDA only; this is the same computation for the CPU (gloo).
    Each rank's count, mean and M2 (sum of squared deviations from its own mean) are gathered
    with the autograd-aware `torch.distributed.nn.functional.all_gather` (so gradients flow
    across ranks too) and merged as Chan et al. (1979) do, in float32 at least; the variance
    is clamped at 0. Parameters and buffers have `nn.BatchNorm1d`'s names, so state dicts load
    both ways; `momentum=None` keeps a cumulative average, as in PyTorch.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected input (N, {self.num_features}, ...), got {tuple(x.shape)}")
        if not self.training and self.track_running_stats:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        mean, var, count = global_moments(x)
        shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), count)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(
        self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor
    ) -> None:
        self.num_batches_tracked.add_(1)
        factor = self.momentum
        if factor is None:  # cumulative moving average, as nn.BatchNorm
            factor = 1.0 / float(self.num_batches_tracked)
        unbiased = var * count / (count - 1).clamp_min(1)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def merge_moments(
    counts: torch.Tensor, means: torch.Tensor, m2s: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chan et al.'s merge of per-part statistics: counts (P,), means and M2 (P, C) ->
    the union's mean (C,) and biased variance (C,), clamped at 0."""
    total = counts.sum()
    weights = (counts / total)[:, None]  # (P, 1)
    mean = (weights * means).sum(0)
    m2 = m2s.sum(0) + (counts[:, None] * (means - mean) ** 2).sum(0)
    return mean, (m2 / total).clamp_min(0)


def global_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of `x` (N, C, ...) over every rank's batch (in
    float32 at least), and the global count (0-d). Alone (no process group), this batch's."""
    from torch.distributed.nn.functional import all_gather

    dims = [0, *range(2, x.dim())]  # every axis but the channels
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    count = x.numel() // x.shape[1]
    mean = xf.mean(dims)
    m2 = ((xf - mean.view((1, -1) + (1,) * (x.dim() - 2))) ** 2).sum(dims)
    local = torch.cat([xf.new_full((1,), float(count)), mean, m2])  # (1 + 2C,)
    if dist.is_available() and dist.is_initialized():
        parts = torch.stack(all_gather(local))  # (P, 1 + 2C), differentiable
    else:
        parts = local[None]
    channels = x.shape[1]
    counts = parts[:, 0].detach()
    mean, var = merge_moments(counts, parts[:, 1 : 1 + channels], parts[:, 1 + channels :])
    return mean, var, counts.sum()


def convert_cross_rank_batchnorm(module: nn.Module) -> nn.Module:
    """Replaces every BatchNorm1d/2d by a CrossRankBatchNorm with the same parameters and
    statistics (state-dict keys unchanged)."""
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            replacement = CrossRankBatchNorm(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            )
            replacement.load_state_dict(child.state_dict())
            setattr(module, name, replacement.to(next(child.buffers()).device))
        else:
            convert_cross_rank_batchnorm(child)
    return module


def wrap(module: nn.Module, world: World, sync_bn: bool, device: torch.device) -> nn.Module:
    """DDP around a module (with batch statistics over all ranks when `sync_bn`: PyTorch's
    SyncBatchNorm on CUDA, CrossRankBatchNorm on the CPU); unchanged when alone."""
    if not world.distributed:
        return module
    if sync_bn and device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    elif sync_bn:
        module = convert_cross_rank_batchnorm(module)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def broadcast_object(value: Any, world: World) -> Any:
    """Rank 0's value on every rank."""
    if not world.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(value: Any, world: World) -> list[Any]:
    """Every rank's value, in rank order, on every rank."""
    if not world.distributed:
        return [value]
    gathered: list[Any] = [None] * world.size
    dist.all_gather_object(gathered, value)
    return gathered


def mean_across(values: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of a tensor over ranks (a copy; the input is unchanged)."""
    if not world.distributed:
        return values
    total = values.detach().clone()
    dist.all_reduce(total)
    return total / world.size


def shutdown(world: World, finished: bool = False) -> None:
    """Destroys the process group. `finished` (every rank got through the run): first wait
    for all ranks, so that no rank tears its connections down while another still has gloo
    work in flight. Not after an error: the ranks that did not fail would wait there until the
    timeout."""
    if world.distributed and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
