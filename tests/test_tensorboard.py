"""`gankit train --tensorboard`: the events read back with TensorBoard's own reader equal
metrics.jsonl, also after a SIGKILL and a resume (whose purge drops the dead run's events)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_config
from gankit.cli import main
from gankit.training.tensorboard import hparams, scalars

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator"
)  # the dev extra installs it; `make test` always has it


def read_events(path):
    accumulator = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    )
    accumulator.Reload()
    return accumulator


def test_scalars_name_train_and_eval_figures_and_skip_what_is_not_a_number():
    assert scalars({"step": 4, "d_loss": 0.5, "it_per_s": 12}) == {
        "train/d_loss": 0.5,
        "train/it_per_s": 12.0,
    }
    row = {
        "step": 4,
        "kind": "eval",
        "fid": 3.5,
        "fid_note": None,
        "extractor": "mnist-cnn",
        "cond_acc_per_class": [0.5, 1.0],
        "intra_fid": float("nan"),
        "flag": True,
    }
    assert scalars(row) == {
        "eval/fid": 3.5,
        "eval/cond_acc_per_class/0": 0.5,
        "eval/cond_acc_per_class/1": 1.0,
    }


def test_events_equal_metrics_jsonl_after_a_kill_and_a_resume(tmp_path, tiny_npz):
    config = tiny_config(tiny_npz, iterations=8).with_overrides(
        {
            "data.dataset": "mnist-sample",
            "schedule.eval_every": 2,
            "schedule.eval_samples": 100,
            "schedule.checkpoint_every": 4,
            "train.threads": 1,
        }
    )
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.to_dict()))
    run = tmp_path / "run"
    # dies as iteration 7 starts: rows and events up to 6 written, the last checkpoint is 4
    launcher = [sys.executable, str(Path(__file__).parent / "launcher.py"), "--kill-at", "7"]
    killed = subprocess.run(
        [
            *launcher,
            "train",
            "--no-progress",
            "--config",
            str(config_file),
            "--out",
            str(run),
            "--tensorboard",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert read_events(run / "tb").Scalars("train/d_loss")[-1].step == 6
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    events = read_events(run / "tb")
    for kind in ("train", "eval"):
        wanted = [r for r in rows if (r.get("kind") == "eval") == (kind == "eval")]
        assert [r["step"] for r in wanted] == [2, 4, 6, 8]
        for tag in (
            (f"{kind}/d_loss", f"{kind}/g_loss")
            if kind == "train"
            else ("eval/fid", "eval/recall", "eval/cond_acc_per_class/3")
        ):
            key, _, index = tag.split("/", 1)[1].partition("/")
            got = events.Scalars(tag)
            assert [e.step for e in got] == [2, 4, 6, 8], tag  # the dead run's 6 purged
            for event, row in zip(got, wanted, strict=True):
                value = row[key][int(index)] if index else row[key]
                assert event.value == pytest.approx(value, rel=1e-6, abs=1e-7), (tag, row["step"])
    assert [e.step for e in events.Images("fixed_noise")] == [2, 4, 6, 8]
    final = read_events(run / "tb" / "hparams")
    last_eval = rows[-1] if rows[-1].get("kind") == "eval" else rows[-2]
    assert final.Scalars("final/fid")[-1].value == pytest.approx(last_eval["fid"], rel=1e-6)


def test_hparams_flatten_the_configuration(tiny_npz):
    flat = hparams(tiny_config(tiny_npz))
    assert flat["train.batch_size"] == 8 and flat["model.g_hidden"] == "[16, 32]"
    assert "train.ema_decay" not in flat  # None is left out
    assert all(isinstance(v, int | float | str | bool) for v in flat.values())


def test_tensorboard_is_off_unless_asked(tmp_path, tiny_npz):
    from gankit.training.loop import train

    train(tiny_config(tiny_npz, iterations=2), tmp_path / "run")
    assert not (tmp_path / "run" / "tb").exists()


def test_a_missing_tensorboard_package_is_a_usage_error(tmp_path, tiny_npz, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(tiny_config(tiny_npz, iterations=2).to_dict()))
    args = ["train", "--config", str(config_file), "--out", str(tmp_path / "r"), "--tensorboard"]
    assert main([*args, "--no-progress"]) == 2
    assert "gankit[tensorboard]" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before the folder was created
