"""Fault injection: SIGKILL at fixed points, a full disk while checkpointing, hostile clients.

(A NaN injected mid-run: test_training.py::test_nan_stops_and_keeps_the_last_good_checkpoint.)
"""

import errno
import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from gankit import checkpoint as checkpoint_module
from gankit.checkpoint import load_checkpoint
from gankit.cli import main
from gankit.run import RunFolder

ITERATIONS, EVERY = 40, 5


def kill_points(seed=2026, count=8):
    """`count` kill points in increasing order: (iteration, phase), phase "iteration" (killed as
    the iteration starts) or "checkpoint" (killed inside a checkpoint write, before its rename)."""
    rng = random.Random(seed)
    in_writes = rng.sample(range(EVERY, ITERATIONS, EVERY), 2)  # checkpoints 5..35
    starts = rng.sample([s for s in range(2, ITERATIONS) if s % EVERY], count - 2)
    points = [(s, "checkpoint") for s in in_writes] + [(s, "iteration") for s in starts]
    return sorted(points)


def final_state(run):
    checkpoint = load_checkpoint(RunFolder(run).checkpoint_path(ITERATIONS))
    state = {**checkpoint.generator}
    state.update({f"d.{k}": v for k, v in checkpoint.discriminator.items()})
    state.update({f"opt_g.{k}": v["exp_avg"] for k, v in checkpoint.opt_g["state"].items()})
    return state


def losses(run):
    return [(r["step"], r["d_loss"], r["g_loss"]) for r in RunFolder(run).metrics()]


@pytest.mark.slow
def test_sigkill_at_eight_points_then_resume_is_bit_identical(tmp_path, tiny_npz):
    points = kill_points()
    assert len({s for s, _ in points}) == 8 and {p for _, p in points} == {
        "iteration",
        "checkpoint",
    }
    config = tiny_config(tiny_npz, iterations=ITERATIONS).with_overrides(
        {
            "schedule.checkpoint_every": EVERY,
            "schedule.log_every": EVERY,
            "train.threads": 1,
            "schedule.keep_checkpoints": 2,
        }
    )
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.to_dict()))
    command = [sys.executable, "-m", "gankit", "train", "--no-progress"]
    launcher = [sys.executable, str(Path(__file__).parent / "launcher.py")]
    run = tmp_path / "killed"
    for i, (step, phase) in enumerate(points):
        spec = f"{step}:checkpoint" if phase == "checkpoint" else str(step)
        args = (
            ["--config", str(config_file), "--out", str(run)] if i == 0 else ["--resume", str(run)]
        )
        done = subprocess.run(
            [*launcher, "--kill-at", spec, "train", "--no-progress", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == -9, (step, phase, done.stderr[-2000:])
        found = RunFolder(run).list_checkpoints()
        latest = load_checkpoint(found[-1]).step if found else 0
        assert latest < step, (step, phase)  # the killed write never became a checkpoint
    resumed = subprocess.run(
        [*command, "--resume", str(run)], capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(
        [*command, "--config", str(config_file), "--out", str(tmp_path / "straight")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert straight.returncode == 0, straight.stderr
    a, b = final_state(run), final_state(tmp_path / "straight")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert losses(run) == losses(tmp_path / "straight")
    assert not list((run / "checkpoints").glob(".*.tmp"))  # no torn temporary files left


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(
    tmp_path, tiny_npz, monkeypatch, capsys
):
    config = tiny_config(tiny_npz, iterations=6)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.to_dict()))
    real_save, calls = torch.save, {"n": 0}

    def save_then_fill_the_disk(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] < 3:  # fixed noise, checkpoint 2
            return real_save(obj, f, *args, **kwargs)
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module.torch, "save", save_then_fill_the_disk)
    run = tmp_path / "run"
    assert main(["train", "--config", str(config_file), "--out", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "step_0000002.pt is intact" in err
    assert "Traceback" not in err
    monkeypatch.undo()
    found = RunFolder(run).list_checkpoints()
    assert [p.name for p in found] == ["step_0000002.pt"]
    assert load_checkpoint(found[0]).step == 2
    assert not list((run / "checkpoints").glob(".*.tmp"))
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0  # space is back


def png_size_ok(response):
    return response.content.startswith(b"\x89PNG")


def test_eight_clients_half_hostile_get_valid_answers_within_5_s(tmp_path, tiny_npz):
    from fastapi.testclient import TestClient

    from gankit.serving.app import create_app
    from gankit.training.loop import train

    train(tiny_config(tiny_npz, iterations=2), tmp_path / "run")
    client = TestClient(create_app(tmp_path / "run"))
    hostile = [
        {"n": "9" * 30},
        {"truncation": "nan"},
        {"seed": "-1"},
        {"label": "x" * 10_000},
        {"truncation": "1e-9"},
        {"n": "256", "truncation": "0"},
    ]

    def client_loop(i):
        times = []
        for k in range(12):
            if i % 2:  # a hostile client
                response = client.get("/api/generate", params=hostile[k % len(hostile)])
                assert response.status_code == 422
            else:
                params = {"n": 64, "seed": k, "label": k % 10, "truncation": 0.5}
                response = client.get("/api/generate", params=params)
                times.append(png_size_ok(response))
                assert response.status_code == 200
        return times

    with ThreadPoolExecutor(8) as pool:
        times = [t for result in pool.map(client_loop, range(8)) for t in result]
    assert len(times) == 48 and all(times)  # their times are benchmarks/bench_serve.py's
