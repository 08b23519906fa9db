"""`gankit compare`: the page, the summary, the best marks and every refusal."""

import json

import numpy as np
import pytest

from conftest import tiny_config
from gankit.cli import main
from gankit.compare import best_runs, compare_runs
from gankit.errors import UsageError
from gankit.training.loop import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny GAN and CGAN on mnist-sample with evaluation rows, and no evaluation.json yet."""
    folder = tmp_path_factory.mktemp("compare")
    for preset in ("seed-gan", "seed-cgan"):
        config = tiny_config("mnist-sample", preset=preset, iterations=4).with_overrides(
            {"schedule.eval_every": 2, "schedule.eval_samples": 200}
        )
        train(config, folder / preset)
    return folder


def write_evaluation(run, **figures):
    result = {"fid": None, "recall": None, "cond_acc": None, **figures}
    record = {"step": 4, "result": result, "floor": {"fid": 0.5, "recall": 0.9, "cond_acc": 0.99}}
    (run / "evaluation.json").write_text(json.dumps(record))


def test_best_marks_follow_the_direction_and_mark_ties():
    assert best_runs([2.0, 1.0, None], lower=True) == {1}
    assert best_runs([0.2, 0.5, 0.5], lower=False) == {1, 2}
    assert best_runs([None, None], lower=True) == set()


def test_the_summary_shows_what_differs_and_marks_the_best(runs, tmp_path, capsys):
    gan, cgan = runs / "seed-gan", runs / "seed-cgan"
    write_evaluation(gan, fid=3.0, recall=0.6)
    write_evaluation(cgan, fid=2.0, recall=0.4, cond_acc=0.9)
    out = tmp_path / "study"
    assert main(["compare", str(gan), str(cgan), "--out", str(out)]) == 0
    md = (out / "compare.md").read_text()
    assert "| model.conditioning | none | multiply |" in md
    assert "train.batch_size" not in md  # the same in both: not a difference
    assert "| FID (lower is better) | 3 | **2** | 0.5 |" in md
    assert "| recall (higher is better) | **0.6** | 0.4 | 0.9 |" in md
    assert "| conditional accuracy (higher is better) | - | **0.9** | 0.99 |" in md
    page = (out / "compare.html").read_text()
    assert page.count('class="best"') == 3 and 'type="range"' in page
    assert "Figures against iteration" in page and "Figures against wall-clock seconds" in page
    assert "http" not in page.split("<body>")[1].replace("http://www.w3.org", "")  # offline


def test_runs_never_evaluated_are_evaluated_alike_and_recorded(runs, tmp_path):
    for name in ("seed-gan", "seed-cgan"):
        (runs / name / "evaluation.json").unlink(missing_ok=True)
    compare_runs([runs / "seed-gan", runs / "seed-cgan"], tmp_path / "c", n=200, seed=5)
    for name in ("seed-gan", "seed-cgan"):
        record = json.loads((runs / name / "evaluation.json").read_text())
        assert record["seed"] == 5 and record["result"]["n"] == 200
    assert "seed 5" in (tmp_path / "c" / "compare.html").read_text()


def test_a_missing_evaluation_says_how_to_add_it(runs, tmp_path):
    write_evaluation(runs / "seed-gan", fid=3.0)
    (runs / "seed-cgan" / "evaluation.json").unlink(missing_ok=True)
    compare_runs([runs / "seed-gan", runs / "seed-cgan"], tmp_path / "c")
    page = (tmp_path / "c" / "compare.html").read_text()
    assert "No evaluation yet for seed-cgan" in page and "gankit evaluate" in page
    assert not (runs / "seed-cgan" / "evaluation.json").exists()  # not without --evaluate


def test_refusals_are_usage_errors(runs, tmp_path, capsys):
    gan = str(runs / "seed-gan")
    assert main(["compare", gan, "--out", str(tmp_path / "x")]) == 2
    assert "2 to 8 runs" in capsys.readouterr().err
    assert main(["compare", *[gan] * 9, "--out", str(tmp_path / "x")]) == 2
    (tmp_path / "notes").mkdir()
    assert main(["compare", gan, str(tmp_path / "notes"), "--out", str(tmp_path / "x")]) == 2
    assert "not a gankit run" in capsys.readouterr().err
    rgb = tmp_path / "rgb.npz"
    pixels = np.random.default_rng(0).integers(0, 256, (32, 28, 28, 3), dtype=np.uint8)
    np.savez(rgb, images=pixels, labels=np.arange(32) % 4)
    train(tiny_config(rgb, preset="seed-gan", iterations=2), tmp_path / "rgb-run")
    with pytest.raises(UsageError, match="different shapes"):
        compare_runs([gan, tmp_path / "rgb-run"], tmp_path / "x")
    empty = tiny_config("mnist-sample", iterations=1).with_overrides(
        {"schedule.checkpoint_every": 100}
    )
    (tmp_path / "fresh").mkdir()
    from gankit.run import RunFolder

    RunFolder(tmp_path / "fresh").write_config(empty.to_dict())
    with pytest.raises(UsageError, match="no checkpoint"):
        compare_runs([gan, tmp_path / "fresh"], tmp_path / "x")
