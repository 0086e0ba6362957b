"""Metrics: exact values on hand-made predictions, cross-checked against scikit-learn and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from attempt.tasks import metrics
from attempt.tasks.metrics import compute, get_metric, normalize_answer


def test_accuracy_exact():
    assert compute("accuracy", [0, 1, 1, 0], [0, 1, 0, 0]) == 75.0


def test_f1_matches_sklearn_and_treats_unknown_as_not_positive():
    predictions, references = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    expected = 100 * f1_score(references, predictions)
    assert compute("f1", predictions, references) == pytest.approx(expected)
    assert compute("f1", predictions, references) == pytest.approx(200 / 3)
    # -1 (a generated string that matched no label word) on a positive reference is a false negative.
    assert compute("f1", [1, -1], [1, 1]) == pytest.approx(100 * f1_score([1, 1], [1, 0]))


def test_macro_f1_matches_sklearn():
    predictions, references = [0, 1, 2, 2, 1, 0], [0, 1, 2, 1, 1, 2]
    expected = 100 * f1_score(references, predictions, average="macro")
    assert compute("macro_f1", predictions, references) == pytest.approx(expected)


def test_matthews_matches_sklearn():
    predictions, references = [1, 1, 0, 0, 1, 0, 1], [1, 0, 0, 1, 1, 0, 1]
    expected = 100 * matthews_corrcoef(references, predictions)
    assert compute("matthews_correlation", predictions, references) == pytest.approx(expected)


def test_correlations_match_scipy():
    predictions, references = [0.0, 1.2, 2.6, 3.0, 4.8], [0.2, 1.0, 3.0, 2.8, 5.0]
    assert compute("pearson", predictions, references) == pytest.approx(
        100 * stats.pearsonr(predictions, references)[0]
    )
    assert compute("spearman", predictions, references) == pytest.approx(90.0)
    assert compute("pearson", [1.0, 1.0], [0.0, 2.0]) == 0.0  # constant predictions: defined as 0


@pytest.mark.parametrize("value", [0.4, 2.7, 4.8])
def test_a_constant_column_whose_float_std_is_not_zero_scores_no_correlation_not_nan(value):
    references = [0.0, 1.2, 2.6, 3.0, 4.8] * 10
    assert np.std([value] * 50) != 0.0  # the trap: rounding leaves 50 equal floats a std of about 1e-16
    assert compute("pearson", [value] * 50, references) == 0.0
    assert compute("spearman", [value] * 50, references) == 0.0
    assert compute("pearson", references, [value] * 50) == 0.0


def test_normalize_answer():
    assert normalize_answer("  The  Cat's, an apple!") == "cats apple"
    assert normalize_answer("A") == ""


def test_squad_metrics_take_the_best_gold_answer():
    predictions = ["the Eiffel Tower", "Paris France", "nothing"]
    references = [["Eiffel Tower"], ["London", "Paris"], ["something"]]
    assert compute("squad_exact_match", predictions, references) == pytest.approx(100 / 3)
    # F1: 1.0, then "paris france" vs "paris": p=1/2 r=1 -> 2/3, then 0.
    assert compute("squad_f1", predictions, references) == pytest.approx(100 * (1 + 2 / 3) / 3)


def test_multirc_exact_match_groups_by_question():
    predictions = [1, 0, 1, 1, 0]
    references = [1, 0, 0, 1, 0]
    groups = [(0, 0), (0, 0), (0, 1), (0, 1), (1, 2)]
    assert compute("multirc_exact_match", predictions, references, groups=groups) == pytest.approx(200 / 3)
    with pytest.raises(ValueError, match="needs one question id per answer row"):
        compute("multirc_exact_match", predictions, references)


def test_unknown_metric_lists_known_ones():
    with pytest.raises(KeyError, match=r"Unknown metric 'acc'\. Known metrics: accuracy, f1, f1a"):
        get_metric("acc")


def test_length_mismatch_and_empty_are_errors():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute("accuracy", [0, 1], [0])
    with pytest.raises(ValueError, match="No examples"):
        compute("accuracy", [], [])


def test_registry_has_every_paper_metric():
    assert set(metrics.METRICS) >= {
        "accuracy",
        "f1",
        "macro_f1",
        "matthews_correlation",
        "pearson",
        "spearman",
        "f1a",
        "multirc_exact_match",
        "squad_exact_match",
        "squad_f1",
    }
