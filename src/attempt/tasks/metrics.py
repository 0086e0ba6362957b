"""Evaluation metrics of the paper, reported ×100, and a registry to look them up by name.

Every metric has the signature ``metric(predictions, references, groups=None) -> float``:

- classification metrics take integer label ids; a prediction of -1 (a generated string that matched no
  label word) is never equal to a reference, so it counts as wrong;
- ``pearson`` / ``spearman`` take floats;
- ``squad_exact_match`` / ``squad_f1`` take predicted strings and, per example, a list of gold answers
  (the maximum over the gold answers is used, as in the official SQuAD script);
- ``multirc_exact_match`` needs ``groups`` (one question id per answer row): a question counts as correct
  when all its answer rows are.

Built on scikit-learn and scipy (imported when a metric is first computed).
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Callable, Sequence
from typing import Any

Metric = Callable[..., float]


def _check_lengths(predictions: Sequence[Any], references: Sequence[Any]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references.")
    if not references:
        raise ValueError("No examples to score: predictions and references are empty.")


def accuracy(
    predictions: Sequence[Any], references: Sequence[Any], groups: Sequence[Any] | None = None
) -> float:
    """Percentage of predictions equal to their reference."""
    _check_lengths(predictions, references)
    return 100.0 * sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


def f1(predictions: Sequence[int], references: Sequence[int], groups: Sequence[Any] | None = None) -> float:
    """Binary F1 of the class with label id 1, ×100; -1 predictions count as not that class.

    Label id 1 is the task's second label word: mrpc "equivalent", qqp "duplicate", multirc "true" (f1a), a task
    file's second `label_words` entry (`attempt tasks NAME` names it beside the metric); to score the other class,
    list a task file's label words the other way round.
    """
    from sklearn.metrics import f1_score

    _check_lengths(predictions, references)
    return 100.0 * float(f1_score(references, predictions, labels=[1], average="micro", zero_division=0))


def macro_f1(
    predictions: Sequence[int], references: Sequence[int], groups: Sequence[Any] | None = None
) -> float:
    """F1 averaged over the classes (CB), ×100, as sklearn's ``average="macro"``.

    The classes are those present in the references or the predictions, except the -1 of unmatched strings.
    """
    from sklearn.metrics import f1_score

    _check_lengths(predictions, references)
    labels = sorted(set(references) | {p for p in predictions if p != -1})
    return 100.0 * float(f1_score(references, predictions, labels=labels, average="macro", zero_division=0))


def matthews_correlation(
    predictions: Sequence[int], references: Sequence[int], groups: Sequence[Any] | None = None
) -> float:
    """Matthews correlation coefficient (CoLA), ×100."""
    from sklearn.metrics import matthews_corrcoef

    _check_lengths(predictions, references)
    return 100.0 * float(matthews_corrcoef(references, predictions))


def _correlation(kind: str, predictions: Sequence[float], references: Sequence[float]) -> float:
    import numpy as np
    from scipy import stats

    _check_lengths(predictions, references)
    x, y = np.asarray(predictions, dtype=float), np.asarray(references, dtype=float)
    # a constant side: correlation undefined, scored as no correlation. Compared exactly, not by std: the std of
    # 0.4 repeated 46 times is about 6e-17 in floating point, and scipy would answer NaN
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return 0.0
    result = stats.pearsonr(x, y) if kind == "pearson" else stats.spearmanr(x, y)
    return 100.0 * float(result[0])


def pearson(
    predictions: Sequence[float], references: Sequence[float], groups: Sequence[Any] | None = None
) -> float:
    """Pearson correlation (STS-B), ×100; 0 when either side is constant."""
    return _correlation("pearson", predictions, references)


def spearman(
    predictions: Sequence[float], references: Sequence[float], groups: Sequence[Any] | None = None
) -> float:
    """Spearman rank correlation (STS-B), ×100; 0 when either side is constant."""
    return _correlation("spearman", predictions, references)


def multirc_exact_match(
    predictions: Sequence[int], references: Sequence[int], groups: Sequence[Any] | None = None
) -> float:
    """Percentage of questions whose answer rows are all predicted correctly (MultiRC EM).

    Raises:
        ValueError: when `groups` is missing (pass rows, not bare labels, to `Task.compute_metrics`).
    """
    _check_lengths(predictions, references)
    if groups is None or any(g is None for g in groups):
        raise ValueError(
            "multirc_exact_match needs one question id per answer row: pass the rows (with their 'idx' "
            "field) as references, not bare labels."
        )
    correct: dict[Any, bool] = {}
    for prediction, reference, group in zip(predictions, references, groups, strict=True):
        correct[group] = correct.get(group, True) and prediction == reference
    return 100.0 * sum(correct.values()) / len(correct)


# --------------------------------------------------------------------------------------- SQuAD style
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation, drop articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, gold: str) -> float:
    predicted_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = collections.Counter(predicted_tokens) & collections.Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(predicted_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _best_over_gold(score: Callable[[str, str], float], prediction: str, golds: Sequence[str]) -> float:
    if isinstance(golds, str):
        golds = [golds]
    return max((score(prediction, gold) for gold in golds), default=0.0)


def squad_exact_match(
    predictions: Sequence[str], references: Sequence[Sequence[str]], groups: Sequence[Any] | None = None
) -> float:
    """SQuAD exact match, max over gold answers, ×100."""
    _check_lengths(predictions, references)

    def same(prediction: str, gold: str) -> float:
        return float(normalize_answer(prediction) == normalize_answer(gold))

    total = sum(
        _best_over_gold(same, str(p), golds) for p, golds in zip(predictions, references, strict=True)
    )
    return 100.0 * total / len(references)


def squad_f1(
    predictions: Sequence[str], references: Sequence[Sequence[str]], groups: Sequence[Any] | None = None
) -> float:
    """SQuAD token-overlap F1, max over gold answers, ×100."""
    _check_lengths(predictions, references)
    total = sum(
        _best_over_gold(_token_f1, str(p), golds) for p, golds in zip(predictions, references, strict=True)
    )
    return 100.0 * total / len(references)


# ------------------------------------------------------------------------------------------- registry
METRICS: dict[str, Metric] = {
    "accuracy": accuracy,
    "f1": f1,
    "macro_f1": macro_f1,
    "matthews_correlation": matthews_correlation,
    "pearson": pearson,
    "spearman": spearman,
    "f1a": f1,  # MultiRC: binary F1 over all answer rows
    "multirc_exact_match": multirc_exact_match,
    "squad_exact_match": squad_exact_match,
    "squad_f1": squad_f1,
}


class UnknownMetricError(KeyError):
    """An unknown metric name; the message lists the known metrics."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def get_metric(name: str) -> Metric:
    """Look a metric up by name.

    Args:
        name: a key of `METRICS`.

    Returns:
        The metric function.

    Raises:
        UnknownMetricError: (a KeyError) for an unknown name; the message lists the valid ones.
    """
    if name not in METRICS:
        raise UnknownMetricError(f"Unknown metric {name!r}. Known metrics: {', '.join(sorted(METRICS))}.")
    return METRICS[name]


def compute(
    name: str, predictions: Sequence[Any], references: Sequence[Any], groups: Sequence[Any] | None = None
) -> float:
    """Compute one metric by name.

    Args:
        name: a key of `METRICS`.
        predictions: predictions in the form the metric expects (see the module docstring).
        references: references, same length.
        groups: question ids for grouped metrics (MultiRC EM), else None.

    Returns:
        The score ×100 as a Python float.

    Raises:
        UnknownMetricError: unknown name. ValueError: length mismatch, no examples, or missing groups.
    """
    return float(get_metric(name)(predictions, references, groups=groups))
