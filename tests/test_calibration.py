"""The metrics respond to what they should (after Heusel et al. 2017): held-out real digits,
disturbed step by step, scored with the shipped judge against the other 4,000."""

import pytest

from gankit.metrics.calibration import BLUR, CLASSES_KEPT, SPECKLE, calibration


@pytest.fixture(scope="module")
def rows():
    return calibration()


def series(rows, disturbance, key):
    return [row.figures[key] for row in rows if row.disturbance == disturbance]


@pytest.mark.parametrize("disturbance", ["speckle", "blur", "classes kept"])
@pytest.mark.parametrize("key", ["fid", "kid"])
def test_fid_and_kid_grow_with_every_step_of_every_disturbance(rows, disturbance, key):
    values = series(rows, disturbance, key)
    assert len(values) == {"speckle": len(SPECKLE), "blur": len(BLUR)}.get(
        disturbance, len(CLASSES_KEPT)
    )
    assert all(b > a for a, b in zip(values, values[1:], strict=False)), values


def test_recall_falls_as_classes_are_dropped(rows):
    recall = series(rows, "classes kept", "recall")
    assert all(b < a for a, b in zip(recall, recall[1:], strict=False)), recall
    assert recall[0] > 0.8 and recall[-1] < 0.3


def test_the_judge_reads_speckled_digits_as_their_digits(rows):
    accuracy = dict(zip(SPECKLE, series(rows, "speckle", "cond_acc"), strict=True))
    assert accuracy[0.0] >= 0.99
    assert accuracy[0.05] >= 0.97, accuracy


def test_clean_held_out_digits_score_near_the_floor(rows):
    clean = rows[0].figures
    assert clean["fid"] < 1.0 and abs(clean["kid"]) < 3 * clean["kid_std"]
    assert clean["is"] >= 9.0  # no label smoothing: the judge is confident on real digits
