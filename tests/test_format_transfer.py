"""benchmarks/format_transfer.py: a target read in a source's format, the exact McNemar test by hand, the report."""

from __future__ import annotations

import pytest
import torch

from attempt.tasks import get_task
from benchmarks import format_transfer


def test_a_target_in_the_source_format_keeps_its_labels_and_takes_the_source_prefix_and_field_names(
    monkeypatch,
):
    from attempt.tasks import base

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # the new task is gone after this test
    name = format_transfer.in_source_format("rte", "mnli")
    task = get_task(name)
    row = {"sentence1": "A man sleeps.", "sentence2": "A man is awake.", "label": 1, "idx": 0}
    assert task.source_text(row) == "mnli premise: A man sleeps. hypothesis: A man is awake."
    assert task.target_text(row) == "not_entailment" and task.metrics == get_task("rte").metrics


@pytest.mark.parametrize(
    ("only_a", "only_b", "expected"),
    [(5, 0, 2 / 32), (3, 3, 1.0), (0, 0, 1.0), (8, 1, 2 * (1 + 9) / 512)],
)
def test_mcnemar_is_the_exact_binomial_on_the_rows_only_one_gets_right(only_a, only_b, expected):
    both = [True] * 4
    a = both + [True] * only_a + [False] * only_b
    b = both + [False] * only_a + [True] * only_b
    assert format_transfer.mcnemar_p(a, b) == pytest.approx(expected)


def test_the_report_names_the_pairs_where_the_source_format_is_clearly_better():
    def side(zero, prompt):
        return {
            "zero_shot": {"metrics": {"average": zero}},
            "source_prompt": {"metrics": {"average": prompt}},
        }

    rows = [
        {"source": "qnli", "target": "rte", "rows": 139, "target_format": side(58.3, 53.2),
         "source_format": side(58.3, 60.4), "source_minus_target_accuracy": 7.2, "mcnemar_p": 0.01,
         "source_hash": "sha256:9dafa39e458232a5"},
        {"source": "mnli", "target": "cb", "rows": 28, "target_format": side(37.7, 37.4),
         "source_format": side(37.6, 32.1), "source_minus_target_accuracy": -7.1, "mcnemar_p": 0.5,
         "source_hash": "sha256:226805319c36d35d"},
    ]  # fmt: skip
    text = format_transfer.report(rows)
    assert "| qnli → rte | 139 | 58.3 | 53.2 | 58.3 | 60.4 | +7.2 | 0.010 |" in text
    assert "clearly better (p < 0.05) on 1 of 2 pairs: qnli → rte." in text
    assert "hash`): qnli → rte 9dafa39e4582, mnli → cb 226805319c36." in text


def test_a_rerun_measures_only_the_pairs_whose_source_prompt_the_library_has_replaced(tmp_path):
    from attempt.prompts.library import PromptLibrary, SourcePrompt

    library = PromptLibrary(tmp_path)
    for index, name in enumerate(("mnli", "qnli")):  # no qqp: its pair waits for it
        library.add(SourcePrompt(name, torch.full((2, 4), float(index)), task=name))
    now = {name: library.get(name).hash for name in ("mnli", "qnli")}
    earlier = [
        {"source": "mnli", "target": "rte", "source_hash": "sha256:retrained-since"},
        {"source": "mnli", "target": "cb", "source_hash": now["mnli"]},
        {"source": "qnli", "target": "rte"},
    ]  # fmt: skip  (a result that names no prompt is measured again)
    assert format_transfer.to_measure(earlier, library) == [("mnli", "rte"), ("qnli", "rte")]
    fresh = {"source": "mnli", "target": "rte", "source_hash": now["mnli"]}
    assert format_transfer.replaced(earlier, fresh) == [fresh, *earlier[1:]]  # in place, in PAIRS order
    added = format_transfer.replaced(earlier[1:], fresh)
    assert [(r["source"], r["target"]) for r in added] == [("mnli", "rte"), ("mnli", "cb"), ("qnli", "rte")]
