"""Checkpoints written by an older gankit still load and resume."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from gankit.checkpoint import FORMAT, load_checkpoint
from gankit.config import RunConfig
from gankit.loading import load_generator
from gankit.run import RunFolder
from gankit.training.loop import train

LEGACY = Path(__file__).parent / "fixtures" / "legacy-format1"


@pytest.fixture
def legacy_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(LEGACY, run)
    config = json.loads((run / "config.json").read_text())
    config["data"]["dataset"] = str(run / "tiny8.npz")  # stored relative to where it was made
    (run / "config.json").write_text(json.dumps(config))  # as a user who moved it would
    return run, RunConfig.from_dict(config)


def test_format_1_resumes_with_a_warning_that_its_draws_differ(legacy_run, caplog):
    run, config = legacy_run
    saved = load_checkpoint(RunFolder(run).list_checkpoints()[-1])
    assert FORMAT == 2 and saved.step == 4 and "dropout" not in saved.rng
    with caplog.at_level("WARNING"):
        state = train(config.with_overrides({"train.iterations": 6}), run, resume=True)
    assert "not bit-exact" in caplog.text
    assert state.step == 6
    resumed = load_checkpoint(RunFolder(run).list_checkpoints()[-1])
    assert resumed.step == 6 and "dropout" in resumed.rng
    assert resumed.opt_d["state"][0]["step"].item() == 2 * 6  # two D updates per iteration
    for name, before in saved.generator.items():
        after = resumed.generator[name]
        assert torch.isfinite(after.float()).all()
        if name.endswith("weight"):  # the old moments carried on: weights moved from the saved
            assert not torch.equal(before, after), name


def test_format_1_samples_as_before(legacy_run):
    run, _ = legacy_run
    loaded = load_generator(run)
    assert loaded.step == 4 and loaded.num_classes == 10
    images = loaded.model(torch.randn(3, 8), torch.tensor([0, 1, 2]))
    assert images.shape == (3, 1, 8, 8)


BUDGET_V03 = Path(__file__).parent / "fixtures" / "budget-v0.3"


def test_a_budget_run_of_0_3_reads_as_request_and_plan_and_resumes(tmp_path):
    """gankit 0.3 kept the budget's measured plan inside `budget`; today it is `plan`."""
    run = tmp_path / "run"
    shutil.copytree(BUDGET_V03, run)
    stored = json.loads((run / "config.json").read_text())
    assert "plan" not in stored and stored["budget"]["it_per_s"] > 0  # the 0.3 layout
    stored["data"]["dataset"] = str(run / "tiny8.npz")
    (run / "config.json").write_text(json.dumps(stored))
    config = RunConfig.from_dict(stored)
    assert config.budget.seconds == 15 and config.budget.revise
    assert config.plan.it_per_s == stored["budget"]["it_per_s"]
    assert config.plan.revised_at == 150 and config.plan.planned_iterations == 504
    assert config.planned and config.train.iterations == 427
    loaded = load_generator(run)  # the checkpoint's own config has the 0.3 layout too
    assert loaded.step == 427 and loaded.config.plan == config.plan
    # `--resume RUN --iterations 440`: the recorded plan continues, no re-planning
    state = train(config.with_overrides({"train.iterations": 440}), run, resume=True)
    assert state.step == 440
    again = json.loads((run / "config.json").read_text())
    assert again["plan"] == dataclasses.asdict(config.plan) and "it_per_s" not in again["budget"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 440
