"""benchmarks/label_logits.py: the LM head on every position against the label positions only, here on the
tiny causal LM over the real mirror: the JSON it writes, equal losses and gradients both ways, and its report
rebuilt from the JSON alone."""

from __future__ import annotations

import json
import shutil

import pytest

from benchmarks import label_logits


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("label_logits")
    assert label_logits.main(["--tiny", "--out", str(out), "--data-dir", str(data_dir)]) == 0
    return out


@pytest.mark.data
def test_the_tiny_benchmark_writes_exactly_the_expected_keys_and_equal_training_both_ways(tiny_run):
    results = json.loads((tiny_run / "label_logits-tiny-llama.json").read_text())
    assert list(results) == ["backbone", "command", "commit", "src_modified", "machine", "wall_s", "batch",
                             "prompt_length", "max_source_length", "batches", "repeats", "shape", "methods"]  # fmt: skip
    assert results["command"].startswith("python -m benchmarks.label_logits --tiny --out ")
    assert results["machine"]["threads"] == 1
    shape = results["shape"]
    # rte's label words are a token or two (+ eos) at the end of rows of ~30 tokens: few positions kept
    assert 1 <= shape["mean_label_positions"] <= 3 * results["batch"] < shape["mean_padded_length"]
    assert list(results["methods"]) == ["prompt_tuning", "attempt", "lora"]
    for method in results["methods"].values():
        assert list(method) == ["trainable_params", "first_batch", "float32", "bf16"]
        first = method["first_batch"]
        assert first["loss_abs_diff"] == abs(first["loss_all"] - first["loss_labels"]) < 1e-5
        assert 0 <= first["grad_max_abs_diff"] < 1e-5 < first["grad_max_abs"]  # real gradients, the same
        for precision in ("float32", "bf16"):
            timed = method[precision]
            assert list(timed) == ["all positions", "label positions", "ratio"]
            for way in ("all positions", "label positions"):
                assert len(timed[way]["runs_s"]) == results["batches"] * results["repeats"] == 4
            assert timed["ratio"] == timed["all positions"]["median_s"] / timed["label positions"]["median_s"]


@pytest.mark.data
def test_the_report_is_rebuilt_from_the_json_alone(tiny_run, tmp_path):
    for name in ("label_logits-tiny-llama.json", "label_logits-tiny-llama.md"):
        shutil.copy(tiny_run / name, tmp_path / name)
    written = (tmp_path / "label_logits-tiny-llama.md").read_text()
    (tmp_path / "label_logits-tiny-llama.md").unlink()
    assert label_logits.main(["--tiny", "--report-only", "--out", str(tmp_path)]) == 0
    again = (tmp_path / "label_logits-tiny-llama.md").read_text()
    assert again == written
    assert "| prompt tuning | 128 | float32 |" in again and "## Verdict" in again
