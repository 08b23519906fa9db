import argparse
import json

import numpy as np
import pytest
import torch

from conftest import tiny_config
from gankit.cli import main
from gankit.run import RunFolder


@pytest.fixture
def config_file(tmp_path, tiny_npz):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny_config(tiny_npz, iterations=4).to_dict()))
    return path


def test_train_then_sample(tmp_path, config_file, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", str(config_file), "--out", str(run), "--no-progress"]) == 0
    assert (run / "config.json").exists() and RunFolder(run).list_checkpoints()
    out = tmp_path / "s.npz"
    code = main(
        ["sample", str(run), "--n", "23", "--out", str(out), "--grid", str(tmp_path / "g.png")]
    )
    assert code == 0
    with np.load(out) as archive:
        assert archive["images"].shape == (23, 28, 28) and archive["images"].dtype == np.uint8
        assert archive["labels"].dtype == np.int64
        assert np.bincount(archive["labels"]).tolist() == [3, 3, 3] + [2] * 7
    assert (tmp_path / "g.png").exists()
    assert main(["sample", str(run), "--n", "5", "--label", "7", "--out", str(out)]) == 0
    with np.load(out) as archive:
        assert archive["labels"].tolist() == [7] * 5
    assert main(["sample", str(run), "--n", "4", "--labels", "0,9", "--out", str(out)]) == 0
    with np.load(out) as archive:
        assert archive["labels"].tolist() == [0, 9, 0, 9]
    assert main(["sample", str(run), "--n", "3"]) == 0
    assert (run / "samples.npz").exists()


def test_flags_override_config_and_resume_extends(tmp_path, config_file):
    run = tmp_path / "run"
    args = ["train", "--config", str(config_file), "--out", str(run), "--no-progress"]
    assert main([*args, "--iterations", "2", "--set", "model.conditioning=concat"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["iterations"] == 2 and saved["model"]["conditioning"] == "concat"
    assert main(["train", "--resume", str(run), "--iterations", "4", "--no-progress"]) == 0
    assert RunFolder(run).list_checkpoints()[-1].name == "step_0000004.pt"


def test_python_module_entry_point():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "gankit", "presets"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "seed-cgan" in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--out", "x"], "give --preset NAME or --config FILE"),
        (["train", "--preset", "seed-gan"], "give --out DIR"),
        (["train", "--preset", "nope", "--out", "x"], "unknown preset 'nope'"),
        (["train", "--preset", "seed-gan", "--out", "x", "--batch-size", "0"], "--batch-size"),
        (["train", "--preset", "seed-gan", "--out", "x", "--set", "train.seed=-1"], "train.seed"),
        (["train", "--preset", "seed-gan", "--out", "x", "--set", "a"], "KEY=VALUE"),
        (
            ["train", "--preset", "seed-gan", "--out", "x", "--set", "train.foo=1"],
            "unknown configuration key",
        ),
        (
            ["train", "--preset", "seed-gan", "--out", "x", "--dataset", "cifar"],
            "unknown dataset 'cifar'",
        ),
        (
            ["train", "--preset", "seed-gan", "--out", "x", "--device", "cuda:0"],
            "CUDA is not available",
        ),
        (["train", "--resume", "nowhere"], "config.json"),
        (["train", "--iterations", "ten"], "argument --iterations: expected an integer"),
        (["frobnicate"], "invalid choice"),
        (["sample", "nowhere"], "no checkpoint"),
    ],
)
def test_usage_errors_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_out_exists_needs_overwrite(tmp_path, config_file, capsys):
    args = ["train", "--config", str(config_file), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(args) == 0
    (tmp_path / "run" / "old.txt").write_text("from the earlier run")
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0  # a gankit run: replaced
    assert not (tmp_path / "run" / "old.txt").exists()


def test_sample_usage_errors(tmp_path, config_file, capsys):
    run = tmp_path / "run"
    main(["train", "--config", str(config_file), "--out", str(run), "--no-progress"])
    for argv, message in [
        (["--label", "10"], "label 10 is outside"),
        (["--labels", "a,b"], "--labels must be"),
        (["--n", "0"], "argument --n: must be in 1..1000000"),
        (["--label", "1", "--labels", "balanced"], "not allowed with"),
        (["--checkpoint", "best"], "no best.pt"),
    ]:
        assert main(["sample", str(run), *argv]) == 2, argv
        assert message in capsys.readouterr().err
    gan_config = json.loads(config_file.read_text())
    gan_config["model"]["conditioning"] = "none"
    config_file.write_text(json.dumps(gan_config))
    gan = tmp_path / "gan"
    main(["train", "--config", str(config_file), "--out", str(gan), "--no-progress"])
    assert main(["sample", str(gan), "--label", "1"]) == 2
    assert "unconditional" in capsys.readouterr().err
    with np.load(main(["sample", str(gan), "--n", "2"]) == 0 and gan / "samples.npz") as archive:
        assert "labels" not in archive.files and archive["images"].shape == (2, 28, 28)


def test_cli_checkpoint_loads_weights_only(tmp_path, config_file):
    run = tmp_path / "run"
    main(["train", "--config", str(config_file), "--out", str(run), "--no-progress"])
    payload = torch.load(RunFolder(run).list_checkpoints()[-1], weights_only=True)
    assert {"generator", "discriminator", "opt_g", "opt_d", "rng", "fixed_noise", "step"} <= set(
        payload
    )


HOSTILE = ["9" * 30, "-1", "0", "nan", "inf", "-inf", "1e-30", "", "x" * 10_000]
FLAGS = {  # the command before the flag, and values of HOSTILE that are in the flag's range
    "--iterations": (["train"], set()),
    "--batch-size": (["train"], set()),
    "--seed": (["train"], {"0"}),
    "--threads": (["train"], set()),
    "--log-every": (["train"], set()),
    "--sample-every": (["train"], set()),
    "--checkpoint-every": (["train"], set()),
    "--time-limit": (["train"], set()),
    "--eval-every": (["train"], set()),
    "--eval-samples": (["train"], set()),
    "--nproc": (["train"], set()),
    "--n": (["sample", "RUN"], set()),
    "--truncation": (["sample", "RUN"], set()),
    "--label": (["sample", "RUN"], {"0"}),
    "--steps": (["interpolate", "RUN", "--out", "x.png"], set()),
    "--seeds": (["interpolate", "RUN", "--out", "x.png"], set()),
    "--classes": (["morph", "RUN", "--out", "x.png"], set()),
    "--port": (["serve", "RUN"], {"0"}),  # 0: a free port, bound and printed
    "--epochs": (["classifier", "train", "--dataset", "mnist-sample"], set()),
}
CLI_CASES = [
    (flag, value) for flag, (_, fine) in FLAGS.items() for value in HOSTILE if value not in fine
]


@pytest.mark.parametrize("flag, value", CLI_CASES, ids=lambda x: str(x)[:12])
def test_hostile_flag_values_exit_2_naming_the_flag(flag, value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    command, _ = FLAGS[flag]
    argv = [tmp_path / "no-run" if part == "RUN" else part for part in command]
    assert main([str(a) for a in argv] + [f"{flag}={value}"]) == 2
    err = capsys.readouterr().err
    assert flag in err and len(err) < 2000  # named, and the 10 kB value is not echoed whole
    assert "Traceback" not in err


def test_a_reader_that_goes_away_is_not_a_bug():
    """`gankit presets | grep -q seed` closes the pipe early: exit 141 (SIGPIPE's), no traceback."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "gankit", "presets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # before gankit writes its first line (its imports take longer)
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert "internal error" not in err and "Traceback" not in err and "Exception" not in err


def test_help_states_every_enforced_range_and_choice():
    """Generated from the argument types themselves (cli/ranges.py) and the registries: each
    ranged flag's help shows the range its type enforces, each flag with choices shows them."""
    from gankit.cli import build_parser
    from gankit.cli.ranges import parsers_of

    checked = 0
    for parser in parsers_of(build_parser()):
        for action in parser._actions:
            if isinstance(action.choices, dict) or action.help is None:
                continue
            kind = action.type
            if hasattr(kind, "range"):
                assert f"[{kind.range}]" in action.help, action.option_strings
                kind(str(kind.low)), kind(str(kind.high))  # the ends are in range
                for outside in (kind.low - 1, kind.high * 2 + 1):
                    with pytest.raises(argparse.ArgumentTypeError):
                        kind(str(outside))
                checked += 1
            elif action.choices is not None:
                assert all(str(c) in action.help for c in action.choices), action.option_strings
                checked += 1
    assert checked >= 25


def test_loss_choices_are_the_registry():
    from gankit.cli import build_parser
    from gankit.losses import LOSSES

    text = build_parser().parse_args(["train", "--loss", "hinge", "--out", "x"]).loss
    assert text == "hinge" and sorted(LOSSES) == sorted(set(LOSSES))
    assert main(["train", "--preset", "seed-gan", "--out", "x", "--loss", "nope"]) == 2
