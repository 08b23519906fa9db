import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import tiny_config
from gankit.checkpoint import load_checkpoint
from gankit.cli.train import speed_note
from gankit.errors import RunFolderError
from gankit.loading import load_generator
from gankit.losses import LOSSES, LossFamily
from gankit.run import RunFolder
from gankit.sampling import sample
from gankit.training.loop import TrainingDiverged, train
from launcher import Machine


def weights(run):
    state = load_checkpoint(RunFolder(run).list_checkpoints()[-1])
    return state.step, {**state.generator, **{f"d.{k}": v for k, v in state.discriminator.items()}}


def assert_same_weights(a, b):
    assert a[0] == b[0]
    for key in a[1]:
        assert torch.equal(a[1][key], b[1][key]), key


def test_short_run_writes_every_file(tmp_path, tiny_npz):
    run = tmp_path / "run"
    train(tiny_config(tiny_npz, iterations=4), run)
    assert json.loads((run / "config.json").read_text())["train"]["iterations"] == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert {"d_loss", "d_acc_real", "d_acc_fake", "g_loss", "d_acc"} <= set(rows[0])
    assert sorted(p.name for p in (run / "images").iterdir()) == ["2.png", "4.png"]
    assert [p.name for p in RunFolder(run).list_checkpoints()] == [
        "step_0000002.pt",
        "step_0000004.pt",
    ]
    assert (run / "loss.png").stat().st_size > 0
    fixed = torch.load(run / "fixed_noise.pt", weights_only=True)
    assert fixed["z"].shape == (10, 8) and fixed["labels"].tolist() == list(range(10))
    state = load_checkpoint(RunFolder(run).list_checkpoints()[-1])
    assert state.step == 4 and state.num_classes == 10 and state.image_shape == (1, 28, 28)
    assert state.config["train"]["seed"] == 3 and state.version


def test_seed_is_drawn_and_recorded(tmp_path, tiny_npz, caplog):
    """The seed drawn is the one the run used: its recorded config replays the same weights."""
    config = tiny_config(tiny_npz, iterations=2).with_overrides({"train.seed": None})
    with caplog.at_level("INFO"):
        train(config, tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    seed = recorded["train"]["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**31
    assert f"drew seed {seed}" in caplog.text
    assert load_checkpoint(RunFolder(tmp_path / "run").list_checkpoints()[-1]).config == recorded
    train(config.with_overrides({"train.seed": seed}), tmp_path / "replay")
    assert_same_weights(weights(tmp_path / "run"), weights(tmp_path / "replay"))


def test_resume_gives_the_same_weights(tmp_path, tiny_npz):
    train(tiny_config(tiny_npz, iterations=6), tmp_path / "straight")
    train(tiny_config(tiny_npz, iterations=2), tmp_path / "split")
    train(tiny_config(tiny_npz, iterations=6), tmp_path / "split", resume=True)
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "split"))
    steps = [
        json.loads(x)["step"]
        for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [2, 4, 6]


def test_keeps_the_newest_checkpoints(tmp_path, tiny_npz):
    config = tiny_config(tiny_npz, iterations=10).with_overrides({"schedule.keep_checkpoints": 2})
    train(config, tmp_path / "run")
    assert [p.name for p in RunFolder(tmp_path / "run").list_checkpoints()] == [
        "step_0000008.pt",
        "step_0000010.pt",
    ]


def test_existing_folder_needs_overwrite(tmp_path, tiny_npz):
    run = tmp_path / "run"
    train(tiny_config(tiny_npz, iterations=2), run)
    with pytest.raises(RunFolderError, match="exists and is not empty"):
        train(tiny_config(tiny_npz, iterations=2), run)
    train(tiny_config(tiny_npz, iterations=2), run, overwrite=True)
    with pytest.raises(RunFolderError, match="no config.json"):
        train(tiny_config(tiny_npz, iterations=2), tmp_path / "empty", resume=True)


def test_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_npz, monkeypatch):
    calls = {"n": 0}
    good = LOSSES["nonsaturating"]

    def g_loss_turning_nan(fake_logits):
        calls["n"] += 1
        value = good.g(fake_logits)
        return value * float("nan") if calls["n"] > 5 else value

    family = LossFamily(good.d_real, good.d_fake, g_loss_turning_nan)
    monkeypatch.setitem(LOSSES, "nonsaturating", family)
    config = tiny_config(tiny_npz, iterations=10).with_overrides({"schedule.log_every": 3})
    with pytest.raises(
        TrainingDiverged, match="g_loss became NaN or inf before iteration 6.*step_0000004.pt"
    ):
        train(config, tmp_path / "run")
    saved = RunFolder(tmp_path / "run").list_checkpoints()
    assert [p.name for p in saved] == ["step_0000002.pt", "step_0000004.pt"]
    state = load_checkpoint(saved[-1])
    assert all(torch.isfinite(v).all() for v in state.generator.values())


def test_time_limit_stops_cleanly(tmp_path, tiny_npz):
    config = tiny_config(tiny_npz, iterations=10_000).with_overrides(
        {"schedule.time_limit": 0.5, "schedule.checkpoint_every": 100_000}
    )
    state = train(config, tmp_path / "run")
    assert 0 < state.step < 10_000
    assert [p.name for p in RunFolder(tmp_path / "run").list_checkpoints()] == [
        f"step_{state.step:07d}.pt"
    ]
    assert (tmp_path / "run" / "images" / f"{state.step}.png").exists()


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_npz):
    config = tiny_config(tiny_npz, iterations=300).with_overrides(
        {
            "schedule.checkpoint_every": 20,
            "schedule.log_every": 10,
            "schedule.sample_every": 1000,
            "train.threads": 1,
        }
    )
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.to_dict()))
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "gankit", "train", "--no-progress"]
    process = subprocess.Popen(
        [*command, "--config", str(config_file), "--out", str(run)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(RunFolder(run).list_checkpoints()) < 2:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    found = RunFolder(run).list_checkpoints()
    assert found and load_checkpoint(found[-1]).step < 300, "the run finished before the kill"
    resumed = subprocess.run(
        [*command, "--resume", str(run)], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = subprocess.run(
        [*command, "--config", str(config_file), "--out", str(tmp_path / "straight")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert straight.returncode == 0, straight.stderr
    assert_same_weights(weights(run), weights(tmp_path / "straight"))


def test_conv_models_train_channels_last_resume_exactly_and_sample(tmp_path, tiny_npz):
    def config(iterations):
        return tiny_config(tiny_npz, "cdcgan", iterations, **{"model.channels": 4})

    state = train(config(4), tmp_path / "straight")
    convs = [p for p in state.generator.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    train(config(2), tmp_path / "split")
    resumed = train(config(4), tmp_path / "split", resume=True)
    for part in ("generator", "generator_ema", "discriminator"):
        mine, straight = getattr(resumed, part).state_dict(), getattr(state, part).state_dict()
        assert mine.keys() == straight.keys()
        for name in mine:
            assert torch.equal(mine[name], straight[name]), f"{part}.{name}"
    loaded = load_generator(tmp_path / "split")  # a fresh model in PyTorch's default layout
    labels = torch.arange(4)

    def draw(model):
        return sample(model, 4, labels=labels, generator=torch.Generator().manual_seed(5))

    torch.testing.assert_close(draw(loaded.model), draw(resumed.sampler))


class SlowHousekeeping(Machine):
    """A machine whose checkpoints take as long as 1,000 iterations."""

    def before_checkpoint_rename(self, step):
        self.count += 1000


def test_the_speed_of_a_run_counts_its_steps_and_not_its_checkpoints(tmp_path, module_npz):
    machine = SlowHousekeeping(speed=50.0)
    config = tiny_config(module_npz, iterations=6)
    state = train(config, tmp_path / "run", hooks=machine, clock=machine.clock)
    assert state.trained == (6, pytest.approx(6 / 50))  # 3 checkpoints, 3,000 iterations' time
    # a resume reports the iterations of its own process only
    longer = config.with_overrides({"train.iterations": 10})
    state = train(longer, tmp_path / "run", resume=True, hooks=machine, clock=machine.clock)
    assert state.trained == (4, pytest.approx(4 / 50))


def test_the_final_line_gives_iterations_per_second_and_milliseconds_per_iteration():
    assert speed_note(500, 10.0) == "; 50.0 it/s, 20.00 ms per iteration"
    assert speed_note(0, 0.0) == ""  # a resume of a finished run trains nothing
    assert speed_note(3, 0.0) == ""
