"""`gankit export`: ONNX, torch.export and safetensors generators that equal the run's, the
model card, and the export folder's overwrite guard."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import tiny_config
from gankit.cli import main
from gankit.loading import load_generator
from gankit.training.loop import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory, module_npz):
    """A small conditional conv run (cBN G, EMA) and a small unconditional MLP run."""
    root = tmp_path_factory.mktemp("runs")
    conv = tiny_config(module_npz, "cdcgan", iterations=2).with_overrides(
        {"model.channels": 4, "model.latent_dim": 8}
    )
    train(conv, root / "conv")
    train(tiny_config(module_npz, "seed-gan", iterations=2), root / "plain")
    return root


def export(run, fmt, out, *extra):
    return main(["export", str(run), "--format", fmt, "--out", str(out), "--no-eval", *extra])


def generated(run, z, labels=None):
    loaded = load_generator(run)
    with torch.no_grad():
        return loaded.model(z, labels)


def test_onnxruntime_equals_the_generator_for_any_batch(runs, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "onnx"
    assert export(runs / "conv", "onnx", out) == 0
    manifest = json.loads((out / "gankit-export.json").read_text())
    assert manifest["complete"] and manifest["format"] == "onnx" and manifest["source"]["ema"]
    assert manifest["contract"]["inputs"]["labels"]["range"] == [0, 9]
    assert {p.name for p in out.iterdir()} >= {
        "generator.onnx",
        "config.json",
        "samples.png",
        "model_card.md",
        "gankit-export.json",
    }
    session = ort.InferenceSession(str(out / "generator.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 3, 7):
        z = torch.randn(n, 8, generator=torch.Generator().manual_seed(n))
        labels = torch.arange(n) % 10
        got = session.run(None, {"z": z.numpy(), "labels": labels.numpy()})[0]
        np.testing.assert_allclose(got, generated(runs / "conv", z, labels).numpy(), atol=1e-5)
    card = (out / "model_card.md").read_text()
    assert "onnxruntime" in card and "int64 (N,), each in 0..9" in card
    assert "Not evaluated (--no-eval)" in card


def test_a_pt2_program_runs_in_a_process_that_imports_only_torch(runs, tmp_path):
    out = tmp_path / "pt2"
    assert export(runs / "plain", "pt2", out) == 0
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    torch.save(z, tmp_path / "z.pt")
    script = (
        "import sys, torch\n"
        "generator = torch.export.load(sys.argv[1]).module()\n"
        "torch.save(generator(torch.load(sys.argv[2])), sys.argv[3])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'gankit'))\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(out / "generator.pt2"),
            str(tmp_path / "z.pt"),
            str(tmp_path / "images.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"  # gankit was never imported
    images = torch.load(tmp_path / "images.pt")
    torch.testing.assert_close(images, generated(runs / "plain", z), rtol=0, atol=1e-6)
    assert "torch.export.load" in (out / "model_card.md").read_text()


def test_a_safetensors_export_loads_and_samples_like_the_run(runs, tmp_path):
    pytest.importorskip("safetensors")
    out = tmp_path / "st"
    assert export(runs / "conv", "safetensors", out) == 0
    exported, original = load_generator(out), load_generator(runs / "conv")
    assert exported.num_classes == 10 and exported.step == original.step and exported.ema
    for key, value in original.model.state_dict().items():
        torch.testing.assert_close(exported.model.state_dict()[key], value, rtol=0, atol=0)
    for source, name in ((out, "a.npz"), (runs / "conv", "b.npz")):
        args = ["sample", str(source), "--n", "10", "--seed", "4", "--out", str(tmp_path / name)]
        assert main(args) == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["labels"], b["labels"])


def test_the_model_card_reports_a_fresh_evaluation_with_floor_and_copy_rate(tmp_path, tiny_npz):
    pytest.importorskip("safetensors")
    config = tiny_config(tiny_npz, iterations=2).with_overrides({"data.dataset": "mnist-sample"})
    train(config, tmp_path / "run")
    assert (
        main(
            [
                "export",
                str(tmp_path / "run"),
                "--format",
                "safetensors",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    card = (tmp_path / "out" / "model_card.md").read_text()
    assert "5,000 samples" in card and "mnist-cnn" in card and "real-data floor" in card
    assert "| copy rate |" in card and "| FID |" in card and "| conditional accuracy |" in card
    manifest = json.loads((tmp_path / "out" / "gankit-export.json").read_text())
    assert manifest["evaluation"]["n"] == 5000 and manifest["evaluation"]["fid"] > 0


def test_the_overwrite_guard_and_bad_sources(runs, tmp_path, capsys):
    pytest.importorskip("safetensors")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    for extra in ((), ("--overwrite",)):  # not an export: refused either way, nothing deleted
        assert export(runs / "plain", "safetensors", notes, *extra) == 2
        assert (notes / "mine.txt").read_text() == "keep me"
    assert "only replaces exports" in capsys.readouterr().err
    out = tmp_path / "out"
    assert export(runs / "plain", "safetensors", out) == 0
    assert export(runs / "plain", "safetensors", out) == 2  # exists: needs --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert export(runs / "conv", "safetensors", out, "--overwrite") == 0
    assert load_generator(out).num_classes == 10  # replaced by the conv run's export
    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert export(empty, "safetensors", tmp_path / "x") == 2  # no checkpoint
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert export(out, "safetensors", tmp_path / "y") == 2  # an export is not a run
    assert "is an export, not a run" in capsys.readouterr().err
    assert export(runs / "plain", "tflite", tmp_path / "z") == 2  # argparse: bad choice
    assert "invalid choice" in capsys.readouterr().err


def test_gankit_reads_only_safetensors_exports_and_names_missing_extras(
    runs, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "pt2"
    assert export(runs / "plain", "pt2", out) == 0
    with pytest.raises(ValueError, match="torch.export.load"):
        load_generator(out)
    assert main(["sample", str(out), "--n", "2"]) == 2
    monkeypatch.setitem(sys.modules, "safetensors", None)
    assert export(runs / "plain", "safetensors", tmp_path / "st") == 2
    assert "gankit[safetensors]" in capsys.readouterr().err
    assert not (tmp_path / "st").exists()
