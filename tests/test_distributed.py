"""Data-parallel training with torch.distributed (gloo, 2 CPU processes)."""

import copy
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import tiny_config
from gankit.checkpoint import load_checkpoint
from gankit.cli import main
from gankit.data import load_dataset
from gankit.models.dropout import Dropout
from gankit.run import RunFolder
from gankit.training import measure
from gankit.training.distributed import World
from gankit.training.state import build_state
from gankit.training.step import StepOptions, discriminator_step, generator_step, make_fakes

pytestmark = pytest.mark.slow


def equivalence_config(tiny_npz, reuse_fakes=False):
    """A dropout-free tiny CGAN with SyncBatchNorm, as the reference algorithm runs it (or, with
    `reuse_fakes`, G's step through the fakes D was given, made in training mode)."""
    return tiny_config(tiny_npz, iterations=3).with_overrides(
        {
            "model.d_dropout": [0.0, 0.0, 0.0],
            "train.sync_bn": True,
            "train.batch_size": 16,
            "quirks.g_eval_for_fakes": not reuse_fakes,
            "train.reuse_fakes": reuse_fakes,
        }
    )


def injected_batches(dataset, config, steps):
    """The same global batches (indices, noise, labels) on every process, each iteration."""
    g = torch.Generator().manual_seed(123)
    batch, latent = config.train.batch_size, config.model.latent_dim
    batches = []
    for _ in range(steps):
        idx = torch.randint(len(dataset), (batch,), generator=g)
        z = torch.randn(batch, latent, generator=g)
        batches.append((idx, z, torch.randint(10, (batch,), generator=g)))
    return batches


def run_steps(state, dataset, config, batches, rank, world_size):
    """The loop's D and G steps on this rank's slice of each injected global batch."""
    options = StepOptions.from_config(config)
    share = config.train.batch_size // world_size
    part = slice(rank * share, (rank + 1) * share)
    for idx, z, g_labels in batches:
        idx, z, g_labels = idx[part], z[part], g_labels[part]
        real, labels = dataset.images[idx], dataset.labels[idx]
        kept = None
        if config.train.reuse_fakes:  # one G forward, through DDP, kept for G's step
            kept = state.generator_train(z, labels)
            fakes, g_labels = kept.detach(), labels
        else:
            fakes = make_fakes(state.generator_train, z, labels, True)
        discriminator_step(
            state.discriminator_train, state.opt_d, real, labels, fakes, labels, options
        )
        generator_step(
            state.generator_train,
            state.discriminator,
            state.opt_g,
            z,
            g_labels,
            options,
            fakes=kept,
        )


def _worker(rank, world_size, store, tiny_npz, out, reuse_fakes):
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    config = equivalence_config(tiny_npz, reuse_fakes)
    dataset = load_dataset(str(tiny_npz))
    state = build_state(config, dataset, torch.device("cpu"), World(rank, world_size, rank))
    run_steps(state, dataset, config, injected_batches(dataset, config, 3), rank, world_size)
    if rank == 0:
        torch.save(
            {
                **state.generator.state_dict(),
                **{f"d.{k}": v for k, v in state.discriminator.state_dict().items()},
            },
            out,
        )
    dist.barrier()  # neither rank tears gloo down while the other still sends
    dist.destroy_process_group()


def _dropout_worker(rank, world_size, store, tiny_npz, out):
    """Records the masks of D's dropout layers on this rank for one forward pass."""
    dist.init_process_group("gloo", init_method=store, rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    config = tiny_config(tiny_npz)  # seed-cgan: dropout 0.4 after D's 2nd and 3rd layers
    state = build_state(
        config, load_dataset(str(tiny_npz)), torch.device("cpu"), World(rank, world_size, rank)
    )
    masks = []
    for layer in state.discriminator.modules():
        if isinstance(layer, Dropout):
            layer.register_forward_hook(lambda m, inputs, output: masks.append(output != 0))
    images = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    state.discriminator(images, torch.arange(8))
    torch.save(masks, f"{out}.{rank}")
    dist.barrier()
    dist.destroy_process_group()


def _measure_worker(rank, world_size, store, tiny_npz, out):
    """The budget's speed measurement with a collective in every iteration (as DDP's backward
    has), rank 1 on a clock running ten times fast."""
    dist.init_process_group(
        "gloo",
        init_method=store,
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    torch.set_num_threads(1)
    config = tiny_config(tiny_npz).with_overrides({"budget.seconds": 40.0})  # measures 1 s
    world = World(rank, world_size, rank)
    state = build_state(config, load_dataset(str(tiny_npz)), torch.device("cpu"), world)
    calls = []

    def iterate():
        calls.append(1)
        dist.all_reduce(torch.ones(1))

    clock = time.monotonic
    if rank == 1:  # alone, this rank's clock would end its measurement long before rank 0's
        clock = lambda: 10 * time.monotonic()  # noqa: E731
    figures = measure.measure(
        state, config, iterate, lambda path: None, None, torch.device("cpu"), world, clock
    )
    torch.save({"calls": len(calls), "it_per_s": figures["it_per_s"]}, f"{out}.{rank}")
    dist.barrier()
    dist.destroy_process_group()


def test_every_rank_times_the_same_iterations_for_a_budget(tmp_path, tiny_npz):
    """A rank that stopped measuring on its own clock would meet another collective than its
    peer (gloo: "Received data size doesn't match expected size", or a hang)."""
    out = tmp_path / "measured"
    mp.spawn(
        _measure_worker, args=(2, rendezvous(tmp_path), tiny_npz, str(out)), nprocs=2, join=True
    )
    rank0, rank1 = (torch.load(f"{out}.{r}", weights_only=True) for r in range(2))
    assert (
        rank0["calls"] == rank1["calls"] > measure.WARMUP_ITERATIONS + measure.MEASURE_ITERATIONS[0]
    )
    assert rank0["it_per_s"] == rank1["it_per_s"]  # rank 0's figures on every rank


def rendezvous(tmp_path):
    """A file store for the spawned ranks to meet: unlike a free TCP port picked in advance,
    no other process on the machine can take it before the ranks bind it."""
    return f"file://{tmp_path / 'rendezvous'}"


def test_ranks_draw_different_dropout_masks(tmp_path, tiny_npz):
    out = tmp_path / "masks"
    mp.spawn(
        _dropout_worker, args=(2, rendezvous(tmp_path), tiny_npz, str(out)), nprocs=2, join=True
    )
    rank0, rank1 = (torch.load(f"{out}.{r}", weights_only=True) for r in range(2))
    assert len(rank0) == len(rank1) == 2
    for a, b in zip(rank0, rank1, strict=True):
        assert 0.4 < a.float().mean() < 0.8  # a dropout of 0.4 at work on both ranks
        assert not torch.equal(a, b)  # same seed, same input: only the streams differ


@pytest.mark.parametrize("reuse_fakes", [False, True])
def test_two_processes_equal_one_with_the_global_batch(tmp_path, tiny_npz, reuse_fakes):
    out = tmp_path / "ddp.pt"
    mp.spawn(
        _worker, args=(2, rendezvous(tmp_path), tiny_npz, out, reuse_fakes), nprocs=2, join=True
    )
    config = copy.deepcopy(equivalence_config(tiny_npz, reuse_fakes)).with_overrides(
        {"train.sync_bn": False}
    )
    dataset = load_dataset(str(tiny_npz))
    state = build_state(config, dataset, torch.device("cpu"))
    run_steps(state, dataset, config, injected_batches(dataset, config, 3), 0, 1)
    single = {
        **state.generator.state_dict(),
        **{f"d.{k}": v for k, v in state.discriminator.state_dict().items()},
    }
    ddp = torch.load(out, weights_only=True)
    assert set(ddp) == set(single)
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5, msg=key)


LAUNCHER = str(Path(__file__).parent / "launcher.py")  # gankit with test-only fault hooks


def torchrun(args, env=None, timeout=180, launcher=None):
    """`gankit train --nproc 2 ARGS`; with `launcher` options, through tests/launcher.py."""
    entry = [LAUNCHER, *launcher] if launcher else ["-m", "gankit"]
    command = [sys.executable, *entry, "train", "--nproc", "2", "--no-progress", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def config_file(tmp_path, tiny_npz):
    config = tiny_config(tiny_npz, iterations=6).with_overrides({"train.threads": 1})
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config.to_dict()))
    return path


def weights(run):
    state = load_checkpoint(RunFolder(run).list_checkpoints()[-1])
    return {**state.generator, **{f"d.{k}": v for k, v in state.discriminator.items()}}


def test_two_process_run_writes_one_folder_and_resumes_exactly(tmp_path, config_file):
    straight, split = tmp_path / "straight", tmp_path / "split"
    result = torchrun(["--config", str(config_file), "--out", str(straight)])
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]  # one row per log step, not one per rank
    checkpoint = load_checkpoint(RunFolder(straight).list_checkpoints()[-1])
    assert checkpoint.config["model"]["d_dropout"] == [0.0, 0.4, 0.4]  # seed-cgan's dropout on
    assert len(checkpoint.rng["ranks"]) == 2
    for stream in ("training", "dropout"):
        states = [checkpoint.rng["ranks"][r][stream] for r in range(2)]
        assert not torch.equal(*states), stream
    assert main(["sample", str(straight), "--n", "10", "--out", str(tmp_path / "s.npz")]) == 0
    result = torchrun(["--config", str(config_file), "--out", str(split), "--iterations", "2"])
    assert result.returncode == 0, result.stderr
    result = torchrun(["--resume", str(split), "--iterations", "6"])
    assert result.returncode == 0, result.stderr
    a, b = weights(straight), weights(split)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_failing_rank_stops_the_job(tmp_path, config_file):
    result = torchrun(
        ["--config", str(config_file), "--out", str(tmp_path / "run")],
        launcher=["--fail-at", "3:1"],
    )
    assert result.returncode != 0
    assert "rank 1 fails at iteration 3" in result.stderr


def test_batch_must_divide_over_processes(tmp_path, config_file):
    result = torchrun(
        ["--config", str(config_file), "--out", str(tmp_path / "run"), "--batch-size", "7"]
    )
    assert result.returncode != 0 and "not divisible by the 2 processes" in result.stderr


def test_evaluations_off_the_logging_grid_do_not_deadlock(tmp_path):
    config = tiny_config("mnist-sample", preset="seed-gan", iterations=6).with_overrides(
        {
            "train.threads": 1,
            "schedule.log_every": 2,
            "schedule.eval_every": 3,
            "schedule.eval_samples": 200,
            "schedule.checkpoint_every": 100,
        }
    )
    config_file = tmp_path / "eval.json"
    config_file.write_text(json.dumps(config.to_dict()))
    run = tmp_path / "run"
    result = torchrun(["--config", str(config_file), "--out", str(run)], timeout=240)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    kinds = [(r["step"], r.get("kind", "train")) for r in rows]
    assert kinds == [(2, "train"), (3, "eval"), (4, "train"), (6, "train"), (6, "eval")]


def test_a_budget_is_planned_once_for_every_rank(tmp_path, config_file):
    """Rank 0 measures, plans and broadcasts: both ranks run the same number of iterations
    (a differing plan would leave one rank waiting in an all-reduce until the timeout). Each
    rank's clock ticks 10 ms a reading (rank 0's decide), so the plan is this machine's
    whatever its speed."""
    run = tmp_path / "run"
    result = torchrun(
        ["--config", str(config_file), "--out", str(run), "--budget", "6"],
        timeout=300,
        launcher=["--ticks", "0.01"],
    )
    assert result.returncode == 0, result.stderr
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["plan"]["it_per_s"] > 0
    iterations = recorded["train"]["iterations"]
    assert iterations > 100
    last = int(RunFolder(run).list_checkpoints()[-1].stem.split("_")[1])
    assert last == iterations  # both ranks ran the recorded total
