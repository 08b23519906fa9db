"""The summaries behind the reference's instability figures and the sweep's selection rule
(benchmarks/bench_reference.py): the conclusions in docs/reproduction.md rest on them."""

import math

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("bench_reference")


def grid_rows(bench, figures):
    """Seed-1 sweep rows: {(lr, beta1): (cond_acc, fid)}."""
    done = {}
    for (lr, beta1), (acc, fid) in figures.items():
        overrides = bench.sweep_overrides(lr, beta1)
        done[bench.run_key("seed-cgan", "mnist-sample", 1, overrides)] = {
            "overrides": overrides,
            "result": {"cond_acc": acc, "fid": fid},
        }
    return done


def full_grid(bench, acc=0.9, fid=10.0):
    return {(lr, b): (acc, fid) for lr in bench.LRS for b in bench.BETA1S}


def test_the_best_setting_is_the_most_accurate(bench):
    figures = full_grid(bench)
    figures[(5e-4, 0.5)] = (0.95, 20.0)
    assert bench.best_setting(grid_rows(bench, figures)) == bench.sweep_overrides(5e-4, 0.5)


def test_a_tie_within_half_a_point_goes_to_the_lower_fid(bench):
    figures = full_grid(bench)
    figures[(5e-4, 0.5)] = (0.950, 20.0)
    figures[(1e-3, 0.0)] = (0.9455, 8.0)  # 0.0045 below: tied, and a lower FID
    figures[(1e-4, 0.0)] = (0.9449, 1.0)  # 0.0051 below: not tied
    assert bench.best_setting(grid_rows(bench, figures)) == bench.sweep_overrides(1e-3, 0.0)


def test_no_best_setting_until_the_grid_is_complete(bench):
    figures = full_grid(bench)
    del figures[(1e-3, 0.0)]
    done = grid_rows(bench, figures)
    assert bench.best_setting(done) is None
    planned = bench.planned_runs(["sweep"], done)
    assert len(planned) == len(bench.LRS) * len(bench.BETA1S)  # no confirmation runs yet
    done = grid_rows(bench, full_grid(bench))
    seeds = [seed for _, _, seed, _ in bench.planned_runs(["sweep"], done)]
    assert seeds.count(2) == 1 and seeds.count(3) == 1


def test_volatility_is_the_mean_change_from_iteration_5000_on(bench):
    evals = [
        {"step": s, "fid": f} for s, f in [(4000, 100.0), (5000, 10.0), (6000, 14.0), (7000, 11.0)]
    ]
    assert bench.volatility(evals, "fid") == pytest.approx((4 + 3) / 2)
    assert bench.volatility(evals, "fid", relative=True) == pytest.approx((4 / 10 + 3 / 14) / 2)
    assert bench.volatility(evals[:2], "fid") is None  # one evaluation from 5,000 on: no change


def test_worst_class_drop_is_the_largest_fall_of_one_class(bench):
    evals = [
        {"step": 5000, "cond_acc_per_class": [0.9, 0.8, 0.7]},
        {"step": 6000, "cond_acc_per_class": [0.95, 0.5, 0.7]},  # class 1 falls 0.3
        {"step": 7000, "cond_acc_per_class": [0.85, 0.6, 0.75]},  # class 0 falls 0.1
    ]
    assert bench.worst_class_drop(evals) == pytest.approx(0.3)


def test_rank_correlation_is_spearmans_rho(bench):
    xs = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert bench.rank_correlation(xs, [10.0, 20.0, 30.0, 40.0, 50.0]) == pytest.approx(1.0)
    assert bench.rank_correlation(xs, [5.0, 4.0, 3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    # by hand: ranks (0,1,2,3) and (1,0,3,2), sum d^2 = 4, rho = 1 - 6*4 / (4*15) = 0.6
    assert bench.rank_correlation([1, 2, 3, 4], [2.0, 1.0, 4.0, 3.0]) == pytest.approx(0.6)
    assert bench.rank_correlation([1, 2], [1, 2]) is None


def test_render_reports_seeds_and_marks_an_undecided_sweep(bench):
    evals = [
        {"step": 1000 * k, "fid": 10.0 + k * k, "cond_acc": 0.9, "cond_acc_per_class": [0.9] * 10,
         "d_acc_real": 0.6, "d_acc_fake": 0.5 + k * k / 1000, "recall": 0.2}
        for k in range(1, 10)
    ]  # fmt: skip
    row = {
        "preset": "seed-cgan",
        "dataset": "mnist-sample",
        "seed": 1,
        "overrides": {},
        "result": {
            "fid": 7.0,
            "cond_acc": 0.98,
            "recall": 0.15,
            "precision": 0.9,
            "copy_rate": 0.03,
        },
        "floor": {"fid": 0.06, "cond_acc": 1.0, "recall": 0.9, "precision": 0.9, "copy_rate": 0.0},
        "train_s": 600.0,
        "evals": evals,
    }
    second = {**row, "seed": 2, "result": {**row["result"], "fid": 9.0}}
    sweep = {**row, "overrides": bench.sweep_overrides(1e-3, 0.0)}
    text = bench.render({"machine": "a CPU", "runs": {"a": row, "b": second, "c": sweep}})
    assert "| seed-cgan | mnist-sample | 1,2 | 8 ± 1.4 |" in text
    # FID's changes from 5,000 on: 11, 13, 15, 17; D's accuracy on fakes rises with FID, and
    # so do its changes: rho = +1 both ways
    # as shares: 11/35, 13/46, 15/59, 17/74, mean 0.270
    assert "| seed-cgan | mnist-sample | 2 | 14 | 0.27 | 0 | 0 | 1 | 1 |" in text
    assert "not decided until all 8 settings have run" in text
    assert not math.isnan(bench.volatility(evals, "fid"))


def test_the_conditioning_table_pairs_the_same_seeds(bench):
    def row(seed, fid, overrides):
        figures = {"fid": fid, "cond_acc": 0.9, "recall": 0.2, "precision": 0.8, "copy_rate": 0.0}
        return {"preset": "seed-cgan", "dataset": "mnist-sample", "seed": seed,
                "overrides": overrides, "result": figures}  # fmt: skip

    done = {f"m{s}": row(s, 10.0 + s, {}) for s in (1, 2, 3, 4, 5)}
    assert bench.conditioning_table(done) == []  # nothing to compare yet
    done |= {f"c{s}": row(s, 5.0, {"model.conditioning": "concat"}) for s in (1, 2)}
    done["sweep"] = row(1, 1.0, bench.sweep_overrides(1e-3, 0.0))  # not a conditioning row
    lines = bench.conditioning_table(done)
    assert "| multiply | 1,2,3 | 12 ± 1 |" in "\n".join(lines)  # seeds 4 and 5 left out
    assert "| concat | 1,2 | 5 ± 0 |" in "\n".join(lines)
    assert not any(line.startswith("| projection") for line in lines)
    planned = bench.planned_runs(["conditioning"], {})
    assert len(planned) == 6 and {o["model.conditioning"] for *_, o in planned} == {
        "concat",
        "projection",
    }


def test_the_data_table_compares_the_same_seeds(bench):
    def row(seed, fid, overrides):
        figures = {"fid": fid, "cond_acc": 0.7, "recall": 0.01, "precision": 0.6, "copy_rate": 0.0}
        return {"preset": "seed-cgan", "dataset": "fashion-mnist", "seed": seed,
                "overrides": overrides, "result": figures}  # fmt: skip

    done = {f"f{s}": row(s, 20.0 + s, {}) for s in (1, 2, 3)}
    assert bench.data_table(done) == []
    done["s1"] = row(1, 30.0, {"data.size": bench.SUBSET})
    text = "\n".join(bench.data_table(done))
    assert "| 5,000 (500 a class) | 1 | 30 |" in text
    assert "| 60,000 | 1 | 21 |" in text  # only the seed the subset has
    planned = bench.planned_runs(["data"], {})
    assert [(p, d, o) for p, d, _, o in planned] == [
        ("seed-cgan", "fashion-mnist", {"data.size": 5000})
    ] * 3


def test_training_seconds_add_up_the_segments_of_a_resumed_run(bench):
    rows = [{"step": 50, "elapsed_s": 1.0}, {"step": 100, "elapsed_s": 2.0}, {"kind": "eval"}]
    assert bench.training_seconds(rows) == 2.0
    resumed = [*rows, {"step": 150, "elapsed_s": 0.5}, {"step": 200, "elapsed_s": 1.5}]
    assert bench.training_seconds(resumed) == 3.5
    assert bench.training_seconds([{"kind": "eval"}]) is None


def test_changes_take_the_trend_out(bench):
    evals = [
        {"step": 4000, "fid": 50.0, "d_acc_fake": 0.1},
        {"step": 5000, "fid": 10.0, "d_acc_fake": 0.5},
        {"step": 6000, "fid": 12.0, "d_acc_fake": None},  # skipped: one figure is missing
        {"step": 7000, "fid": 9.0, "d_acc_fake": 0.75},
        {"step": 8000, "fid": 9.5, "d_acc_fake": 0.5},
    ]
    assert bench.changes(evals, "d_acc_fake", "fid") == [[0.25, -0.25], [-1.0, 0.5]]


def test_spreads_read_without_exponents(bench):
    assert bench.spread([583.0, 1000.0, 166.0]) == "583 ± 417"
    assert bench.spread([0.0283]) == "0.0283"
    assert bench.spread([0.001, 0.003]) == "0.002 ± 0.0014"


def test_runs_are_planned_in_the_order_of_the_sections(bench):
    first = bench.planned_runs(["conditioning", "seeds"], {})
    assert first[0][3] == {"model.conditioning": "concat"} and first[-1][3] == {}
    assert len(first) == 6 + 2 * (5 + 3)


def test_the_selection_rule_is_written_before_the_sweep_runs(bench):
    text = bench.render({"machine": "a CPU", "runs": {}})
    assert "Rule, fixed before the runs: " + bench.SELECTION + ". Not run yet." in text


def result_row(seed, overrides, fid, acc=0.9):
    figures = {"fid": fid, "cond_acc": acc, "recall": 0.2, "precision": 0.8, "copy_rate": 0.0}
    return {"preset": "seed-cgan", "dataset": "mnist-sample", "seed": seed,
            "overrides": overrides, "result": figures}  # fmt: skip


def test_the_sweep_reuses_the_reference_runs_for_its_own_setting(bench):
    assert bench.sweep_overrides(*bench.REFERENCE_SETTING) == {}
    assert bench.sweep_setting({}) == bench.REFERENCE_SETTING
    assert bench.sweep_setting({"model.conditioning": "concat"}) is None
    both = bench.planned_runs(["seeds", "sweep"], {})
    keys = [bench.run_key(*r) for r in both]
    assert len(keys) == len(set(keys)) == 2 * (5 + 3) + 7  # the reference's seed 1 only once
    # the reference wins: its confirmation seeds are the seeds section's runs, nothing new
    done = {
        bench.run_key("seed-cgan", "mnist-sample", 1, bench.sweep_overrides(lr, b)): result_row(
            1, bench.sweep_overrides(lr, b), 10.0, 0.99 if (lr, b) == (2e-4, 0.5) else 0.9
        )
        for lr in bench.LRS
        for b in bench.BETA1S
    }
    assert bench.best_setting(done) == {}
    assert len(bench.planned_runs(["sweep"], done)) == 8 + 2
    assert {bench.run_key(*r) for r in bench.planned_runs(["sweep"], done)} <= set(
        bench.run_key(*r) for r in bench.planned_runs(["seeds", "sweep"], {})
    )


def test_the_sweep_table_shows_the_grid_then_the_best_beside_the_reference(bench):
    done = {}
    for lr in bench.LRS:
        for b in bench.BETA1S:
            o = bench.sweep_overrides(lr, b)
            acc = 0.99 if (lr, b) == (1e-3, 0.0) else 0.9
            done[bench.run_key("seed-cgan", "mnist-sample", 1, o)] = result_row(1, o, 10.0, acc)
    best = bench.sweep_overrides(1e-3, 0.0)
    for seed in (2, 3):
        done[f"b{seed}"] = result_row(seed, best, 4.0 + seed, 0.99)
        done[f"r{seed}"] = result_row(seed, {}, 20.0, 0.9)
    text = "\n".join(bench.sweep_table(done))
    assert "| 0.0002 (the reference) | 0.5 | 10 | 0.900 |" in text
    assert "| 0.001 | 0 | 10 | 0.990 |" in text
    assert "Best by the rule: learning rate 0.001, beta_1 0." in text
    assert "| best: 0.001, beta_1 0 | 1,2,3 | 7.67 ± 2.1 |" in text
    assert "| reference: 0.0002, beta_1 0.5 | 1,2,3 | 16.7 ± 5.8 |" in text


def test_the_ablation_pairs_each_detail_with_the_reference_on_the_same_seeds(bench):
    done = {f"r{s}": result_row(s, {}, 10.0 + s) for s in (1, 2, 3, 4, 5)}
    assert bench.ablation_table(done) == []
    fresh = {"quirks.reuse_noise": False}
    done["a1"] = result_row(1, fresh, 20.0)
    text = "\n".join(bench.ablation_table(done))
    assert "| none (the reference) | 1 | 11 |" in text
    assert "| fresh-noise: fresh noise in G's step | 1 | 20 |" in text
    assert "one-d-step" not in text
    planned = bench.planned_runs(["ablation"], {})
    assert len(planned) == 6 * 3 and [r[2] for r in planned[:6]] == [1] * 6  # seed by seed
    assert planned[5][3] == {f"quirks.{q}": False for q in bench.QUIRKS}


def test_overrides_reach_gankit_as_the_values_they_are(bench, tmp_path):
    from gankit.config import parse_value

    overrides = {**bench.ABLATION["no-quirks"][0], "model.conditioning": "concat",
                 "optim.lr_g": 1e-4}  # fmt: skip
    command = bench.train_command("seed-cgan", "mnist-sample", 1, overrides, 1, tmp_path)
    given = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "--set")
    assert {k: parse_value(v) for k, v in given.items()} == overrides
    assert all(type(parse_value(given[k])) is type(v) for k, v in overrides.items())


def test_only_the_runs_whose_curves_are_read_are_evaluated_during_training(bench, tmp_path):
    def evaluated(overrides):
        return "--eval-every" in bench.train_command("seed-cgan", "mnist-sample", 1, overrides, 1,
                                                     tmp_path)  # fmt: skip

    assert evaluated({}) and evaluated({"model.conditioning": "concat"})
    assert evaluated({"data.size": bench.SUBSET})
    assert not evaluated(bench.sweep_overrides(1e-3, 0.0))
    assert not any(evaluated(o) for o, _ in bench.ABLATION.values())
