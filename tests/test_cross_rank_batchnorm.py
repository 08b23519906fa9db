"""CrossRankBatchNorm: Chan et al.'s merge, and equality with nn.BatchNorm on the union batch."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gankit.training.distributed import (
    CrossRankBatchNorm,
    convert_cross_rank_batchnorm,
    merge_moments,
)


def test_merge_moments_equals_the_statistics_of_the_union():
    g = torch.Generator().manual_seed(0)
    parts = [torch.randn(n, 5, generator=g, dtype=torch.float64) * 3 + 7 for n in (4, 9, 1)]
    union = torch.cat(parts)
    counts = torch.tensor([float(len(p)) for p in parts], dtype=torch.float64)
    means = torch.stack([p.mean(0) for p in parts])
    m2s = torch.stack([((p - p.mean(0)) ** 2).sum(0) for p in parts])
    mean, var = merge_moments(counts, means, m2s)
    torch.testing.assert_close(mean, union.mean(0))
    torch.testing.assert_close(var, union.var(0, unbiased=False))


def test_merge_is_stable_where_the_sum_of_squares_cancels():
    # float32 values 1e4 apart from 0 with spread 1e-2: E[x^2] - E[x]^2 loses every digit
    x = 1e4 + 1e-2 * torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    naive = (x * x).mean(0) - x.mean(0) ** 2
    layer = CrossRankBatchNorm(3)
    layer(x)  # alone: this batch's moments
    expected = x.double().var(0, unbiased=True).float()
    torch.testing.assert_close(layer.running_var, 0.9 + 0.1 * expected, rtol=1e-3, atol=1e-6)
    assert not torch.allclose(naive, x.double().var(0, unbiased=False).float(), rtol=0.1)
    constant = torch.full((8, 2), 3.0)
    _, var = merge_moments(torch.tensor([8.0]), constant.mean(0)[None], torch.zeros(1, 2))
    assert (var >= 0).all()


@pytest.mark.parametrize("momentum", [0.2, None])
@pytest.mark.parametrize("dims", [1, 2])
def test_alone_it_is_nn_batchnorm(momentum, dims):
    torch.manual_seed(0)
    reference = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(4, eps=1e-3, momentum=momentum)
    nn.init.normal_(reference.weight)
    nn.init.normal_(reference.bias)
    layer = CrossRankBatchNorm(4, eps=1e-3, momentum=momentum)
    layer.load_state_dict(reference.state_dict())
    shape = (6, 4) if dims == 1 else (6, 4, 3, 5)
    for _ in range(3):
        x = torch.randn(shape, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_(True)
        y, y_ref = layer(x), reference(x_ref)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        (y * torch.arange(y.numel()).view(y.shape)).sum().backward()
        (y_ref * torch.arange(y.numel()).view(y.shape)).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-4)
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(layer.state_dict()[name], value, msg=name)
    layer.eval()
    reference.eval()
    x = torch.randn(shape)
    torch.testing.assert_close(layer(x), reference(x))


def test_conversion_keeps_state_dict_keys():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=None))
    converted = convert_cross_rank_batchnorm(model)
    assert isinstance(converted[1], CrossRankBatchNorm) and converted[1].momentum is None
    assert list(converted.state_dict()) == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]


def union_batch(dtype):
    g = torch.Generator().manual_seed(7)
    return (torch.randn(12, 4, 3, 3, generator=g) * 2 + 5).to(dtype)


def _worker(rank, world_size, store, dtype, out):
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    x = union_batch(dtype)[rank * 5 : 12 if rank else 5]  # unequal shares: 5 and 7 images
    x.requires_grad_(True)
    layer = CrossRankBatchNorm(4, eps=1e-3, momentum=None)
    y = layer(x)
    (y.float() * torch.arange(y.numel()).view(y.shape)[: y.shape[0]]).sum().backward()
    torch.save({"y": y.detach(), "grad": x.grad, **layer.state_dict()}, f"{out}.{rank}")
    dist.barrier()  # neither rank tears gloo down while the other still sends (SIGABRT)
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_two_ranks_equal_nn_batchnorm_on_the_union_batch(tmp_path, dtype, rtol):
    out = tmp_path / "bn"
    store = f"file://{tmp_path / 'rendezvous'}"  # no TCP port another process could take first
    mp.spawn(_worker, args=(2, store, dtype, str(out)), nprocs=2, join=True)
    x = union_batch(dtype).float().requires_grad_(True)  # the same values, in float32
    reference = nn.BatchNorm2d(4, eps=1e-3, momentum=None)
    y = reference(x)
    weights = torch.arange(y[:5].numel()).view(y[:5].shape).float()
    weights_rest = torch.arange(y[5:].numel()).view(y[5:].shape).float()
    ((y[:5] * weights).sum() + (y[5:] * weights_rest).sum()).backward()
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    atol = 1e-5 if dtype == torch.float32 else 1e-2
    got = torch.cat([r["y"] for r in ranks]).float()
    torch.testing.assert_close(got, y.detach(), rtol=rtol, atol=atol)
    grad = torch.cat([r["grad"] for r in ranks]).float()
    scale = x.grad.abs().max()
    torch.testing.assert_close(grad / scale, x.grad / scale, rtol=rtol, atol=atol)
    for name in ("running_mean", "running_var"):
        for r in ranks:
            torch.testing.assert_close(r[name], getattr(reference, name), rtol=rtol, atol=atol)
