import json

import pytest

from gankit.config import (
    RunConfig,
    available_presets,
    load_preset,
    merge_config,
    read_config_file,
)


@pytest.mark.parametrize("name", ["seed-gan", "seed-cgan"])
def test_seed_presets_match_the_reference(name):
    config = load_preset(name)
    assert config.preset == name
    assert config.train.batch_size == 32 and config.train.iterations == 20_000
    assert (config.optim.lr_g, config.optim.lr_d, config.optim.beta1) == (2e-4, 2e-4, 0.5)
    assert config.model.g_hidden == [256, 512, 1024]
    assert (config.model.bn_momentum, config.model.bn_eps) == (0.2, 1e-3)
    assert config.quirks.separate_d_steps and config.quirks.g_eval_for_fakes
    assert config.quirks.reuse_noise == (name == "seed-cgan")
    assert config.conditional == (name == "seed-cgan")


def test_every_preset_listed_loads():
    assert {"seed-gan", "seed-cgan"} <= set(available_presets())
    for name in available_presets():
        assert load_preset(name).preset == name


def test_round_trip_through_dict():
    config = load_preset("seed-cgan")
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_key_and_preset_raise():
    with pytest.raises(ValueError, match="unknown configuration key"):
        RunConfig.from_dict({"train": {"iteratons": 5}})
    with pytest.raises(ValueError, match="unknown configuration key"):
        load_preset("seed-gan").with_overrides({"nope.x": 1})
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        load_preset("nope")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train.iterations": "ten"}, "train.iterations"),
        ({"train.batch_size": 0}, "train.batch_size must be a finite number > 0"),
        ({"schedule.time_limit": float("nan")}, "schedule.time_limit must be a finite"),
        ({"schedule.time_limit": float("inf")}, "schedule.time_limit must be a finite"),
        ({"train.batch_size": 2.5}, "train.batch_size"),
        ({"model.d_dropout": [0.1]}, "model.d_dropout has 1 entries"),
        ({"optim.beta1": 1.5}, "optim.beta1"),
        ({"model.init": "he"}, "model.init"),
        ({"quirks.reuse_noise": 1}, "quirks.reuse_noise"),
        ({"optim.lr_decay_start": 1.0}, r"optim.lr_decay_start must be in \[0, 1\)"),
        ({"optim.lr_decay_start": -0.1}, "optim.lr_decay_start"),
        ({"optim.lr_decay_start": float("nan")}, "optim.lr_decay_start"),
        ({"train.ema_rampup": 0.0}, r"train.ema_rampup must be in \(0, 1\]"),
        ({"train.ema_rampup": 1.5}, "train.ema_rampup"),
        ({"train.ema_rampup": -0.05}, "train.ema_rampup"),
        ({"train.ema_rampup": float("inf")}, "train.ema_rampup"),
        ({"train.ema_rampup": "fast"}, "train.ema_rampup"),
        ({"budget.revise": 1}, "budget.revise"),
        ({"train.reuse_fakes": True}, "train.reuse_fakes needs .*g_eval_for_fakes = True"),
        ({"train.reuse_fakes": "yes"}, "train.reuse_fakes"),
        ({"train.reuse_fakes": None}, "train.reuse_fakes"),
        ({"budget.revise": "yes"}, "budget.revise"),
        ({"budget.revise": None}, "budget.revise"),
        ({"budget.plots_s": -1.0}, "budget.plots_s"),
        ({"budget.plots_s": float("nan")}, "budget.plots_s"),
        ({"budget.revised_at": 0}, "budget.revised_at"),
        ({"budget.planned_iterations": -3}, "budget.planned_iterations"),
        ({"budget.revised_it_per_s": float("inf")}, "budget.revised_it_per_s"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_preset("seed-cgan").with_overrides(overrides)


def test_reused_fakes_need_one_d_step():
    config = load_preset("cdcgan").with_overrides({"train.reuse_fakes": True})
    assert config.train.reuse_fakes
    with pytest.raises(ValueError, match="needs train.d_steps = 1 .*got d_steps = 2"):
        config.with_overrides({"train.d_steps": 2})


def test_ints_are_accepted_for_floats():
    config = load_preset("seed-gan").with_overrides({"optim.lr_g": 1})
    assert config.optim.lr_g == 1.0 and isinstance(config.optim.lr_g, float)


def test_config_files_toml_and_json(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[train]\nbatch_size = 64\n")
    merged = merge_config(load_preset("seed-cgan"), read_config_file(toml))
    assert merged.train.batch_size == 64 and merged.model.conditioning == "multiply"
    js = tmp_path / "c.json"
    js.write_text(json.dumps(merged.to_dict()))
    assert RunConfig.from_dict(read_config_file(js)) == merged
    bad = tmp_path / "c.yaml"
    bad.write_text("x: 1")
    with pytest.raises(ValueError, match="must end in .toml or .json"):
        read_config_file(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    with pytest.raises(ValueError, match="is not valid"):
        read_config_file(broken)
