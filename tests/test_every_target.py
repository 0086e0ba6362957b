"""benchmarks/every_target.py: every task end to end, here on the tiny causal LM over the real mirror; a metric's
range, and a task the mirror cannot serve reported with the library's own error."""

from __future__ import annotations

import json

import pytest

from benchmarks import every_target


def test_a_metric_is_in_range_within_0_and_100_and_a_correlation_down_to_minus_100():
    assert every_target.in_range(
        {"accuracy": 0.0, "f1": 100.0, "matthews_correlation": -12.5, "pearson": -100.0}
    )
    assert not every_target.in_range({"accuracy": 100.5})
    assert not every_target.in_range({"squad_f1": -0.1})
    assert not every_target.in_range({"accuracy": float("nan")})
    assert not every_target.in_range({"spearman": None})


def test_an_answer_is_scorable_when_it_is_a_label_word_a_number_or_a_non_empty_span():
    assert every_target.answered("cb", "entailment") and not every_target.answered("cb", "maybe so")
    assert every_target.answered("copa", "choice2") and not every_target.answered("copa", "")
    assert every_target.answered("stsb", "3.4") and every_target.answered("stsb", 1.6)
    assert not every_target.answered("stsb", "") and not every_target.answered("stsb", "to vote")
    assert every_target.answered("squad", "Mongol Empire") and not every_target.answered("squad", "  ")


@pytest.mark.slow
def test_three_kinds_of_task_run_end_to_end_and_record_without_its_training_file_says_so(tmp_path, data_dir):
    argv = [
        "--tiny",
        "--out",
        str(tmp_path),
        "--data-dir",
        str(data_dir),
        "--tasks",
        "cb",
        "stsb",
        "squad",
        "record",
    ]
    assert every_target.main(argv) == 0
    records = {r["task"]: r for r in json.loads((tmp_path / "every_target-tiny-llama.json").read_text())}
    for task, metrics in {"cb": {"macro_f1", "accuracy"}, "stsb": {"pearson", "spearman"},
                          "squad": {"squad_f1", "squad_exact_match"}}.items():  # fmt: skip
        r = records[task]
        assert set(r["test_metrics"]) == metrics and r["all_paper_metrics"] and r["in_range"]
        assert r["steps"] == every_target.STEPS and r["test_rows"] == every_target.TEST_ROWS
        assert 0 <= r["answered"] <= r["test_rows"]
        assert r["example"]["source"].startswith(f"{task} ")
    assert records["record"]["error"].startswith("MissingSplitError: Task 'record'")
    assert "<data>/aps/super_glue/record/train.jsonl" in records["record"]["error"]  # no machine's paths
    assert str(tmp_path) not in records["record"]["error"]
    text = (tmp_path / "every_target-tiny-llama.md").read_text()
    assert "3 of 4 tasks ran and gave every metric of the paper in its range; 1 raised an error" in text
    assert f"| stsb | regression | 16 | {records['stsb']['answered']} | pearson " in text
    assert "- record: MissingSplitError" in text
    assert every_target.main([*argv, "--report-only"]) == 0  # nothing runs again
    assert (tmp_path / "every_target-tiny-llama.md").read_text() == text
