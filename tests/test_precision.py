"""benchmarks/precision.py: float32 against bf16 autocast, here on the tiny causal LM over the real mirror: the
JSON it writes, its report rebuilt from that JSON alone, and the agreement of two precisions' scores by hand."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks import precision

TIMING = {"median_s", "fastest_s", "runs_s", "first_loss"}
AGREEMENT = {
    "rows",
    "same_prediction",
    "changed_rows",
    "label_counts",
    "max_abs_diff",
    "mean_abs_diff",
    "smallest_margin",
    "max_margin_change",
    "largest_changed_margin",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    """One tiny run (8 rte test rows), shared by the tests that read what it wrote."""
    out = tmp_path_factory.mktemp("precision")
    assert precision.main(["--tiny", "--rows", "8", "--out", str(out), "--data-dir", str(data_dir)]) == 0
    return out


@pytest.mark.data
def test_the_tiny_benchmark_runs_end_to_end_and_writes_exactly_the_expected_keys(tiny_run):
    results = json.loads((tiny_run / "precision-tiny-llama.json").read_text())
    assert list(results) == ["backbone", "command", "commit", "src_modified", "machine", "wall_s", "training",
                             "evaluation", "trained"]  # fmt: skip
    assert results["backbone"] == "tiny-llama"
    assert results["command"].startswith("python -m benchmarks.precision --tiny --rows 8 --out ")
    assert set(results["machine"]) == {"torch", "python", "threads", "cpu_capability", "cpu_features"}
    assert results["machine"]["threads"] == 1
    training = results["training"]
    assert set(training) == {"batch", "length", "prompt_length", "repeats", "methods"}
    assert list(training["methods"]) == ["prompt_tuning", "attempt", "lora"]
    for method in training["methods"].values():
        assert set(method) == {"trainable_params", "float32", "bf16", "ratio_median", "ratio_fastest"}
        for precision_name in ("float32", "bf16"):
            assert set(method[precision_name]) == TIMING
            assert len(method[precision_name]["runs_s"]) == training["repeats"] == 2
        assert method["ratio_median"] == method["float32"]["median_s"] / method["bf16"]["median_s"]
        assert method["float32"]["first_loss"] == pytest.approx(method["bf16"]["first_loss"], abs=0.05)
    evaluation = results["evaluation"]
    assert list(evaluation) == ["task", "labels", "batch_size", "max_source_length", "rows", "rows_in_table",
                                "models"]  # fmt: skip
    assert evaluation["task"] == "rte" and evaluation["rows"] == 8 and evaluation["max_source_length"] == 128
    assert (
        evaluation["rows_in_table"] == 277
    )  # rte's whole official validation (main_table.WHOLE_VALIDATION_TEST)
    assert list(evaluation["models"]) == ["prompt_tuning", "attempt"]
    assert evaluation["models"]["attempt"]["sources"] == ["mnli", "qnli", "sst2"]
    for model in evaluation["models"].values():
        assert set(model) - {"sources"} == {"float32", "bf16", "ratio", "agreement"}
        assert set(model["float32"]) == set(model["bf16"]) == {"seconds", "accuracy"}
        assert set(model["agreement"]) == AGREEMENT and model["agreement"]["rows"] == 8
        assert sum(model["agreement"]["label_counts"]) == 8 and len(model["agreement"]["label_counts"]) == 2
        # bf16 rounding, on log-likelihoods of a few nats
        assert 0.0 <= model["agreement"]["max_abs_diff"] < 0.1
    trained = results["trained"]
    assert list(trained) == ["batch_size", "tasks"] and trained["batch_size"] == 32
    assert list(trained["tasks"]) == [
        "sst2",
        "qnli",
        "mnli",
    ]  # the tiny library's random prompts of those names
    labels = {"sst2": 2, "qnli": 2, "mnli": 3}
    for task, scored in trained["tasks"].items():
        assert list(scored) == ["prompt_hash", "prompt_accuracy", "labels", "max_source_length", "rows",
                                "rows_in_table", "float32", "bf16", "ratio", "agreement"]  # fmt: skip
        assert (
            scored["prompt_hash"].startswith("sha256:") and scored["prompt_accuracy"] is None
        )  # tiny: no score
        assert len(scored["labels"]) == labels[task] and scored["max_source_length"] == 128
        assert scored["rows"] == 8 and scored["rows_in_table"] == 300  # --rows 8 of the table's test_limit
        assert set(scored["float32"]) == set(scored["bf16"]) == {"seconds", "accuracy"}
        assert scored["ratio"] == scored["float32"]["seconds"] / scored["bf16"]["seconds"]
        agreed = scored["agreement"]
        assert set(agreed) == AGREEMENT and agreed["rows"] == 8
        assert sum(agreed["label_counts"]) == 8 and len(agreed["label_counts"]) == labels[task]
        assert 0.0 <= agreed["max_abs_diff"] < 0.1


@pytest.mark.data
def test_the_report_is_rebuilt_byte_for_byte_from_the_json_alone(tiny_run, tmp_path):
    written = (tiny_run / "precision-tiny-llama.md").read_text()
    assert written.startswith("# bf16 mixed precision against float32: tiny-llama\n")
    for section in ("## In short", "## Training step", "## Rank scoring at step 0",
                    "## Trained prompts on their own task", "## How it was made"):  # fmt: skip
        assert section in written
    assert "compare the ratios" in written
    assert "- **Trained prompts**: the shipped sst2, qnli, mnli source prompts" in written
    for task in ("sst2", "qnli", "mnli"):
        assert f"{task}: " in written and f"| {task} | 8 of 300 | — |" in written
    shutil.copy(tiny_run / "precision-tiny-llama.json", tmp_path / "precision-tiny-llama.json")
    assert precision.main(["--tiny", "--report-only", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "precision-tiny-llama.md").read_text() == written
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"precision-tiny-llama.{x}" for x in ("json", "md")]


def test_agreement_counts_changed_predictions_and_the_score_differences_as_computed_by_hand():
    float32 = [[-1.0, -2.0], [-0.5, -0.4], [-3.0, -1.0], [-2.0, -2.0]]
    bf16 = [[-1.5, -2.0], [-0.45, -0.5], [-3.0, -1.25], [-2.0, -2.0]]
    # float32 predicts 0, 1, 1, 0 (a tie: the first label), bf16 0, 0, 1, 0: row 1 changed
    result = precision.agreement(float32, bf16)
    assert result["rows"] == 4 and result["changed_rows"] == [1] and result["label_counts"] == [2, 2]
    assert result["same_prediction"] == 0.75
    assert result["max_abs_diff"] == 0.5
    assert result["mean_abs_diff"] == pytest.approx((0.5 + 0.05 + 0.1 + 0.25) / 8)
    # float32 gaps (best minus second best) 1, 0.1, 2, 0; in bf16 the same labels' gaps are 0.5, -0.05, 1.75, 0
    assert result["smallest_margin"] == 0.0
    assert result["max_margin_change"] == pytest.approx(0.5)
    assert result["largest_changed_margin"] == pytest.approx(0.1)
    same = precision.agreement(float32, float32)
    assert same["same_prediction"] == 1.0 and same["changed_rows"] == [] and same["max_abs_diff"] == 0.0
    assert same["max_margin_change"] == 0.0 and same["largest_changed_margin"] is None
    with pytest.raises(ValueError, match="4 rows of scores against 3"):
        precision.agreement(float32, bf16[:3])
