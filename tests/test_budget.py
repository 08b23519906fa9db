"""`gankit train --budget`: the plan's maths, a planned run, its replay, resumes and bad values."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from gankit.cli import main
from gankit.config import RunConfig
from gankit.errors import ConfigError
from gankit.run import RunFolder
from gankit.training import budget, measure
from gankit.training.budget import SAFETY, plan_iterations
from gankit.training.loop import train
from launcher import Machine, Ticks


def test_the_plan_divides_what_is_left_by_the_cost_of_an_iteration():
    # 10 it/s and nothing else: SAFETY * 100 s * 10 it/s
    assert plan_iterations(100, 10, 0, 0, 0, 200, 1000) == int(SAFETY * 1000)
    # a 1 s grid every 10 iterations doubles an iteration's cost; one more grid at the end
    assert plan_iterations(100, 10, 1.0, 0, 0, 10, 1000) == int((SAFETY * 100 - 1) / 0.2)
    # the final evaluation and checkpoint come off the top
    assert plan_iterations(100, 10, 0, 2.0, 5.0, 200, 1000) == int(
        (SAFETY * 100 - 7) / (0.1 + 2 / 1000)
    )
    # evaluations during training: 5 s every 100 iterations add 0.05 s an iteration
    assert plan_iterations(100, 10, 0, 0, 5.0, 200, 1000, 100) == int((SAFETY * 100 - 5) / 0.15)
    with pytest.raises(ConfigError, match="budget.seconds"):
        plan_iterations(3, 10, 0, 0, 5.0, 200, 1000)


@pytest.fixture
def config_file(tmp_path, tiny_npz):
    config = tiny_config(tiny_npz, iterations=4).with_overrides(  # a budget replaces the 4
        {"schedule.sample_every": 50, "schedule.checkpoint_every": 50, "schedule.log_every": 10}
    )
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config.to_dict()))
    return path


def budget_config(config_file, seconds, **overrides):
    config = RunConfig.from_dict(json.loads(config_file.read_text()))
    return config.with_overrides({"budget.seconds": seconds, **overrides})


def generator_weights(run):
    path = RunFolder(run).list_checkpoints()[-1]
    return torch.load(path, weights_only=True)["generator"]


def recorded(run):
    return RunConfig.from_dict(json.loads((Path(run) / "config.json").read_text()))


def known_speed(monkeypatch, it_per_s):
    """The plan's measurement, replaced by a known speed (the measurement's own test, with a
    ticking clock, is below)."""
    figures = {"it_per_s": it_per_s, "grid_s": 0.0, "checkpoint_s": 0.0, "evaluation_s": 0.0}
    monkeypatch.setattr(budget, "measure", lambda *args: dict(figures))


def test_a_budget_run_records_its_plan_and_its_config_replays_it(tmp_path, config_file, capsys):
    """Planned from its own measurement, on a clock that ticks 10 ms a reading."""
    from gankit.cli.train import print_plan

    run, clock = tmp_path / "run", Ticks(0.01)
    train(budget_config(config_file, 8.0), run, clock=clock, started=clock())
    print_plan(run)
    assert "budget 8 s: planned" in capsys.readouterr().out
    plan = recorded(run).plan
    assert recorded(run).planned and recorded(run).budget.seconds == 8 and plan.it_per_s > 0
    assert plan.grid_s > 0 and plan.checkpoint_s > 0 and plan.evaluation_s == 0  # no judge
    assert plan.plots_s > 0  # the loss plot drawn after the last checkpoint
    iterations = recorded(run).train.iterations
    assert iterations > 4  # the plan replaced the config's 4
    assert RunFolder(run).list_checkpoints()[-1].name == f"step_{iterations:07d}.pt"
    # the recorded config is an ordinary run: no planning, and the same weights, which also
    # shows that measuring on the run changed none of its state
    replay = tmp_path / "replay"
    train(recorded(run), replay, clock=Ticks(0.01))
    again = recorded(replay)
    assert again.train.iterations == iterations and again.plan == recorded(run).plan
    for key, value in generator_weights(run).items():
        torch.testing.assert_close(generator_weights(replay)[key], value, rtol=0, atol=0)


def test_a_resume_with_a_budget_plans_what_is_left(tmp_path, config_file, monkeypatch):
    known_speed(monkeypatch, 50.0)
    run, machine = tmp_path / "run", Machine(speed=50.0)
    train(budget_config(config_file, None), run)
    # `--resume RUN --budget 6`: the stored config, a budget, and no plan yet
    config = dataclasses.replace(recorded(run).with_overrides({"budget.seconds": 6.0}))
    train(config, run, resume=True, hooks=machine, clock=machine.clock, started=machine.clock())
    again = recorded(run)
    assert again.planned and again.plan.it_per_s == 50.0 and again.plan.startup_s == 0
    # the 4 iterations already done, then what fits in the 6 seconds at 50 it/s
    left = plan_iterations(6, 50.0, 0, 0, 0, 50, 50)
    assert again.plan.planned_iterations == 4 + left and left > 100
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == again.train.iterations


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "1e9", "0.5", "abc", ""])
def test_hostile_budgets_are_usage_errors(tmp_path, config_file, value, capsys):
    args = ["train", "--config", str(config_file), "--out", str(tmp_path / "r"), "--budget"]
    assert main([*args, value]) == 2
    assert "--budget" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_budget_with_iterations_or_too_small_is_refused(tmp_path, config_file, capsys):
    args = ["train", "--config", str(config_file), "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*args, "--budget", "60", "--iterations", "10"]) == 2
    assert "do not give --iterations" in capsys.readouterr().err
    clock = Ticks(0.01)
    with pytest.raises(ConfigError, match="budget.seconds"):  # 5 s spent before it began
        train(budget_config(config_file, 1.0), tmp_path / "r", clock=clock, started=-5.0)


def test_a_budget_choice_that_clashes_with_a_flag_names_the_way_out(tmp_path, capsys):
    """cdcgan's budget recipe reuses D's fakes, which one D step per iteration allows."""
    out = tmp_path / "r"
    args = ["train", "--preset", "cdcgan", "--budget", "30", "--out", str(out), "--no-progress"]
    assert main([*args, "--set", "train.d_steps=2"]) == 2
    assert "set train.reuse_fakes = false" in capsys.readouterr().err
    assert not out.exists()


def test_budget_values_in_a_config_file_are_checked(tmp_path, tiny_npz):
    config = tiny_config(tiny_npz)
    for key, value in (
        ("budget.seconds", float("nan")),
        ("plan.it_per_s", -1.0),
        ("plan.grid_s", float("inf")),
    ):
        with pytest.raises(ConfigError, match=key):
            config.with_overrides({key: value})


def test_a_machine_slower_than_the_plan_still_stops_within_the_budget(tmp_path, config_file):
    """A recorded plan far too optimistic for this machine (1e6 it/s; it runs 100): the
    budget's own stop ends the run cleanly, final checkpoint written, at its 4 seconds."""
    config = json.loads(config_file.read_text())
    config["train"]["iterations"] = 10**7
    config["budget"] = {"seconds": 4.0}
    config["plan"] = {"it_per_s": 1e6, "grid_s": 0.0, "checkpoint_s": 0.0, "evaluation_s": 0.0,
                      "startup_s": 0.0}  # fmt: skip
    machine, run = Machine(speed=100.0), tmp_path / "run"
    train(RunConfig.from_dict(config), run, hooks=machine, clock=machine.clock, started=0.0)
    last = RunFolder(run).list_checkpoints()[-1]
    assert last.name == "step_0000401.pt"  # the first iteration past 4 s at 100 it/s
    # its learning rate never depended on the total: config.json replays the run it was
    assert recorded(run).train.iterations == 401


def test_the_budget_clock_starts_with_the_process_or_a_recent_launcher(monkeypatch):
    import time

    own = measure._own_start()
    assert own <= time.monotonic()  # this test process started before now
    monkeypatch.setenv(measure.STARTED_ENV, repr(time.time() - (time.monotonic() - own) - 5))
    assert measure.process_started() == pytest.approx(own - 5, abs=0.05)  # launcher, 5 s earlier
    monkeypatch.setenv(measure.STARTED_ENV, repr(time.time() - 10**6))  # stale: ignored
    assert measure.process_started() == pytest.approx(own, abs=0.05)
    monkeypatch.setenv(measure.STARTED_ENV, "garbage")
    assert measure.process_started() == pytest.approx(own, abs=0.05)


def train_args(*extra):
    from gankit.cli import build_parser

    return build_parser().parse_args(["train", "--out", "unused", *extra])


def budget_args(*extra):
    return train_args("--budget", "60", *extra)


def test_a_preset_lays_its_budget_choices_under_the_file_and_the_flags(tmp_path):
    from gankit.cli.train import build_train_config
    from gankit.config import available_presets, budget_choices, load_preset

    for name in available_presets():  # the reference recipe is kept: the count alone changes
        if name.startswith("seed-"):
            assert budget_choices(name) == {}
            assert load_preset(name, budget=True) == load_preset(name)
    choices = budget_choices("cdcgan")
    assert choices["optim.lr_decay"] == "linear" and load_preset("cdcgan").optim.lr_decay == "none"
    # dcgan's budget recipe (chosen on Stacked MNIST): cdcgan's optimiser, batch and one G forward
    assert budget_choices("dcgan") == {
        k: v
        for k, v in choices.items()
        if k.startswith("optim.") or k in ("train.batch_size", "train.reuse_fakes")
    }
    config, _, _ = build_train_config(budget_args("--preset", "cdcgan"))
    assert (
        config.to_dict()
        == load_preset("cdcgan").with_overrides({**choices, "budget.seconds": 60.0}).to_dict()
    )
    # without --budget the preset is as it is; a flag or a file beats a budget choice
    config, _, _ = build_train_config(train_args("--preset", "cdcgan"))
    assert config.optim.lr_decay == "none"
    config, _, _ = build_train_config(
        budget_args("--preset", "cdcgan", "--set", "optim.lr_decay=none")
    )
    assert config.optim.lr_decay == "none"
    file = tmp_path / "mine.toml"
    file.write_text('[optim]\nlr_decay = "none"\n')
    config, _, _ = build_train_config(budget_args("--preset", "cdcgan", "--config", str(file)))
    assert config.optim.lr_decay == "none"


def test_gankit_presets_says_what_a_budget_changes(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cdcgan = lines.index(next(line for line in lines if line.startswith("cdcgan ")))
    assert "--budget" in lines[cdcgan + 1] and "optim.lr_g=0.001" in lines[cdcgan + 1]
    assert 'optim.lr_decay="linear"' in lines[cdcgan + 1]
    seed = lines.index(next(line for line in lines if line.startswith("seed-cgan ")))
    assert "--budget" not in lines[seed + 1]


def test_the_measurement_grows_with_the_budget_within_bounds():
    assert measure.measure_seconds(2) == measure.MEASURE_SECONDS[0]
    assert measure.measure_seconds(200) == pytest.approx(200 * measure.MEASURE_FRACTION)
    assert measure.measure_seconds(1e8) == measure.MEASURE_SECONDS[1]


def test_the_printed_plan_names_the_budget_choices_kept():
    from gankit.cli.train import budget_choices_in_effect
    from gankit.config import load_preset

    config = load_preset("cdcgan", budget=True)
    assert dict(budget_choices_in_effect(config))["optim.lr_g"] == 1e-3
    overridden = config.with_overrides({"optim.lr_g": 5e-4})
    assert "optim.lr_g" not in dict(budget_choices_in_effect(overridden))
    assert budget_choices_in_effect(load_preset("seed-cgan", budget=True)) == []
    import dataclasses

    assert budget_choices_in_effect(dataclasses.replace(config, preset="mine")) == []


def planned_config(iterations=1000, decay="linear", start=0.5, **plan_values):
    values = {"it_per_s": 10.0, "grid_s": 0.5, "checkpoint_s": 0.5, "evaluation_s": 4.0,
              "startup_s": 2.0, **plan_values}  # fmt: skip
    return RunConfig().with_overrides(
        {"train.iterations": iterations, "optim.lr_decay": decay, "optim.lr_decay_start": start,
         "budget.seconds": 100.0, **{f"plan.{key}": value for key, value in values.items()}}
    )  # fmt: skip


def test_a_revision_plans_the_rest_from_the_speed_sustained_so_far():
    config = planned_config()
    # 400 iterations in 20 s of training (20 it/s), 25 s of the budget spent: 95% of what is
    # left once the final evaluation, grid and checkpoint (5 s) are set aside
    revised = budget.revise(config, 400, 0, 20.0, 25.0)
    expected = 400 + int(budget.REVISE_SAFETY * (100 - 25 - 5) * 20)
    assert revised.train.iterations == expected
    assert revised.plan.revised_at == 400 and revised.plan.revised_it_per_s == 20.0
    # a slower machine than measured shortens the plan, as long as step 400 stays constant-LR
    slower = budget.revise(config, 400, 0, 40.0, 45.0)
    assert slower.train.iterations == 400 + int(budget.REVISE_SAFETY * 50 * 10) < 1000
    assert budget.lr_constant_until(slower, slower.train.iterations) >= 400
    # from a resumed step, only this process's iterations and seconds set the speed
    assert budget.revise(config, 400, 200, 10.0, 25.0).plan.revised_it_per_s == 20.0


def test_no_revision_once_the_learning_rate_decays_under_either_total():
    config = planned_config()
    assert budget.revise(config, 501, 0, 20.0, 25.0) is None  # past step 500 of 1,000
    # a total under which step 400 would already have decayed (the run so far would not
    # replay): kept, the budget's stop ends the run instead
    assert budget.revise(config, 400, 0, 400.0, 95.0) is None
    assert budget.revise(planned_config(start=0.0), 50, 0, 5.0, 10.0) is None  # decays at once
    # without decay the total is revised to the end
    revised = budget.revise(planned_config(decay="none"), 990, 0, 49.5, 90.0)
    assert revised.train.iterations == 990 + int(budget.REVISE_SAFETY * 5 * 20)
    # nothing trained yet, or the same total: no revision
    assert budget.revise(config, 0, 0, 0.0, 5.0) is None
    same = planned_config(iterations=400 + int(budget.REVISE_SAFETY * 70 * 20))
    assert budget.revise(same, 400, 0, 20.0, 25.0) is None
    assert budget.revise(RunConfig(), 400, 0, 20.0, 25.0) is None  # no plan


def test_a_revised_run_replays_from_its_config_with_the_same_weights(
    tmp_path, config_file, monkeypatch
):
    """Planned at 20 it/s on a machine that sustains 60, the run revises its total upwards
    while its learning rate is constant, and records it; the recorded config, an ordinary run
    of the final total with the LR decaying over its second half, gives the same weights:
    nothing done before a revision depended on the total."""
    known_speed(monkeypatch, 20.0)
    config = budget_config(
        config_file, 3.0, **{"optim.lr_decay": "linear", "optim.lr_decay_start": 0.5}
    )
    run, machine = tmp_path / "run", Machine(speed=60.0)
    train(config, run, hooks=machine, clock=machine.clock, started=0.0)
    plan, iterations = recorded(run).plan, recorded(run).train.iterations
    assert plan.planned_iterations < 3 * 20 < iterations < 3 * 60  # the plan, then revisions
    assert plan.revised_at <= budget.lr_constant_until(recorded(run), iterations)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == iterations
    assert RunFolder(run).list_checkpoints()[-1].name == f"step_{iterations:07d}.pt"
    replay, machine = tmp_path / "replay", Machine(speed=60.0)
    train(recorded(run), replay, hooks=machine, clock=machine.clock, started=0.0)
    again = recorded(replay)
    assert again.train.iterations == iterations and again.plan == plan  # not revised again
    for key, value in generator_weights(run).items():
        torch.testing.assert_close(generator_weights(replay)[key], value, rtol=0, atol=0)


def test_a_budget_without_revision_keeps_its_plan(tmp_path, config_file, monkeypatch):
    known_speed(monkeypatch, 20.0)
    run, machine = tmp_path / "run", Machine(speed=100.0)
    config = budget_config(config_file, 4.0, **{"budget.revise": False})
    train(config, run, hooks=machine, clock=machine.clock, started=0.0)
    assert recorded(run).train.iterations == recorded(run).plan.planned_iterations == 68
    assert recorded(run).plan.revised_at is None


def test_the_printed_plan_says_what_a_revision_changed(tmp_path, config_file, monkeypatch, capsys):
    from gankit.cli.train import print_plan

    known_speed(monkeypatch, 20.0)
    run, machine = tmp_path / "run", Machine(speed=100.0)
    train(budget_config(config_file, 8.0), run, hooks=machine, clock=machine.clock, started=0.0)
    print_plan(run)
    out = capsys.readouterr().out
    assert "budget 8 s: planned 136 iterations at 20.0 it/s" in out
    assert f"revised at iteration {recorded(run).plan.revised_at} to " in out


def test_the_plan_and_the_stop_set_aside_the_plots_drawn_at_the_end():
    figures = {"it_per_s": 10.0, "grid_s": 0.0, "checkpoint_s": 0.0, "evaluation_s": 0.0}
    config = RunConfig().with_overrides({"budget.seconds": 100.0})
    without = budget.plan(config, figures, 10.0, 0)
    plotted = budget.plan(config, {**figures, "plots_s": 4.0}, 10.0, 0)
    assert without.train.iterations == plan_iterations(90, 10, 0, 0, 0, 200, 1000)
    assert plotted.train.iterations == plan_iterations(86, 10, 0, 0, 0, 200, 1000)
    assert plotted.plan.plots_s == 4.0
    assert budget.time_limit(plotted, 10.0) == pytest.approx(86.0)
    assert budget.time_limit(without, 10.0) == pytest.approx(90.0)
