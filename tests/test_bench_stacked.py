"""The Stacked MNIST benchmark's plans, commands and verdicts (benchmarks/bench_stacked.py):
the results table and its targets rest on them."""

import pytest

from conftest import load_benchmark
from gankit.config import load_preset, parse_value


@pytest.fixture(scope="module")
def bench():
    yield from load_benchmark("bench_stacked")


def row(bench, job, budget, seed, modes, kl, copy=0.01):
    counts = [26] * 1000
    return {"job": job, "budget": budget, "seed": seed, "iterations": 1000 * seed,
            "peak_mb": 900.0, "mode_counts": counts,
            "result": {"modes": modes, "kl": kl, "kl_floor": 0.0192, "copy_rate": copy,
                       "n": 26000},
            "real": {"modes": 1000, "kl": 0.02, "copy_rate": 0.0}}  # fmt: skip


def test_jobs_parse_into_budget_and_seed_pairs(bench):
    assert bench.parse_jobs("dcgan@600,1800:1,2") == [
        ("dcgan", 600, 1), ("dcgan", 600, 2), ("dcgan", 1800, 1), ("dcgan", 1800, 2)
    ]  # fmt: skip
    final = bench.parse_jobs("final")
    assert len(final) == 2 + 6 + 6 and ("seed-gan", 1800, 1) in final
    study = bench.parse_jobs("study")
    assert {b for _, b, _ in study} == {600} and len(study) == 1 + len(bench.CANDIDATES)
    assert bench.parse_jobs("pack2@600:1+pack2@600:1") == [("pack2", 600, 1)]
    assert bench.parse_jobs("fast-lr,pack2@600:1") == [("fast-lr,pack2", 600, 1)]


def test_candidates_combine_with_the_later_one_winning(bench, tmp_path):
    both = bench.job_overrides("fast-lr,batch32")
    fast, batch = bench.CANDIDATES["fast-lr"][0], bench.CANDIDATES["batch32"][0]
    assert both == {**bench.before_overrides(), **fast, **batch}
    assert bench.job_overrides("no-diffaugment,wide")["model.channels"] == 32
    assert bench.what("fast-lr,wide") == "fast-lr + wide: the choices above together"
    assert bench.job_command("fast-lr,wide", 600, 1, tmp_path)[3] == "dcgan"


@pytest.mark.parametrize(
    "text, message",
    [("gan@600:1", "unknown job 'gan'"), ("pack2,dcgan@600:1", "unknown job 'pack2,dcgan'"),
     ("dcgan@ten:1", "must read NAME@BUDGET"),
     ("dcgan@600", "must read NAME@BUDGET"), ("dcgan@0:1", "budgets must be >= 1"),
     ("dcgan@600:-1", "seeds >= 0")],
)  # fmt: skip
def test_bad_jobs_are_named(bench, text, message):
    with pytest.raises(ValueError, match=message):
        bench.parse_jobs(text)


def test_commands_run_the_preset_with_each_override_as_the_value_it_is(bench, tmp_path):
    command = bench.job_command("dcgan", 600, 2, tmp_path)
    assert command[:10] == ["gankit", "train", "--preset", "dcgan", "--dataset",
                            "stacked-mnist", "--budget", "600", "--seed", "2"]  # fmt: skip
    assert "--set" not in command  # the command users run
    for name, (overrides, _) in bench.CANDIDATES.items():
        command = bench.job_command(name, 600, 1, tmp_path)
        given = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "--set")
        parsed = {k: parse_value(v) for k, v in given.items()}
        assert parsed == {**bench.before_overrides(), **overrides}
        config = load_preset("dcgan", budget=True).with_overrides(parsed)  # each one is valid
        for key, value in overrides.items():
            section, _, field = key.partition(".")
            assert getattr(getattr(config, section), field) == value
    assert bench.job_command("seed-gan", 600, 1, tmp_path)[3] == "seed-gan"


def test_dcgan_before_sets_every_budget_choice_back(bench):
    restore = bench.before_overrides()
    budget = load_preset("dcgan", budget=True).with_overrides(restore)
    assert budget.to_dict() == load_preset("dcgan").to_dict()


def test_targets_need_modes_kl_and_copy_rate_on_every_seed(bench):
    assert bench.meets(row(bench, "dcgan", 1800, 1, 1000, 0.03))
    assert not bench.meets(row(bench, "dcgan", 1800, 1, 999, 0.02))
    assert not bench.meets(row(bench, "dcgan", 1800, 1, 1000, 0.031))
    assert bench.meets(row(bench, "dcgan", 600, 1, 990, 0.1))
    assert not bench.meets(row(bench, "dcgan", 600, 1, 995, 0.05, copy=0.1))
    assert bench.meets(row(bench, "dcgan", 900, 1, 1, 9.0)) is None  # no target at 900 s
    rows = [row(bench, "dcgan", 600, 1, 1000, 0.05), row(bench, "dcgan", 600, 2, 980, 0.08)]
    (summary,) = bench.summary_rows(rows)
    assert summary["met"] is False and summary["seeds"] == [1, 2]
    assert summary["modes"] == (990, 980, 1000) and summary["iterations"] == 1500


def test_the_table_holds_gankit_real_floor_and_published_rows(bench):
    rows = [
        row(bench, "dcgan-before", 600, 1, 700, 0.9),
        row(bench, "dcgan", 600, 1, 1000, 0.05),
        row(bench, "dcgan", 600, 2, 996, 0.07),
    ]
    text = bench.render(rows, "a CPU")
    lines = text.splitlines()
    before = next(i for i, line in enumerate(lines) if line.startswith("| dcgan-before"))
    mine = next(i for i, line in enumerate(lines) if line.startswith("| dcgan:"))
    assert before < mine  # the recipe before the study above the recipe
    assert (
        "| 600 | 1,2 | 1,500 | 998 (996-1000) | 0.060 (0.050-0.070) | 0.010 | 900 | met |"
        in (lines[mine])
    )
    assert "| real triples (26,000, seed 1) | - | - | - | 1000 | 0.020 |" in text
    assert "(K - 1) / (2N) = 0.019" in text
    assert "| R3GAN | 1000 | 0.029 |" in text and "| DCGAN | 99 | 3.4 |" in text
    assert "No rows yet" in bench.render([], "a CPU")


def test_the_mode_plot_draws_the_seed_one_rows(bench, tmp_path):
    rows = [row(bench, "dcgan", 600, 1, 1000, 0.05), row(bench, "pack2", 600, 1, 10, 4.6)]
    bench.plot_modes(rows, tmp_path / "modes.png")
    assert (tmp_path / "modes.png").stat().st_size > 10_000


def test_kept_rows_name_run_folders_relative_to_the_repository(bench):
    root = str(bench.ROOT)
    for path in (bench.ROOT / "benchmarks" / "results").iterdir():
        assert root not in path.read_text(), path.name
    folder = bench.job_folder("dcgan", 600, 1).relative_to(bench.ROOT)
    assert "--out benchmarks/_work/stacked/dcgan_600_1 " in " ".join(
        bench.job_command("dcgan", 600, 1, folder)
    )
