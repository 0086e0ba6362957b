"""benchmarks/efficiency.py: the parameter arithmetic, and a --tiny run writing every report key."""

from __future__ import annotations

import json

import pytest

from benchmarks import efficiency as efficiency_benchmark


@pytest.fixture(scope="module")
def efficiency():
    return efficiency_benchmark


def test_paper_param_counts(efficiency):
    counts = efficiency.paper_param_counts()
    assert counts["prompt_per_task"] == 76_800
    assert counts["attention"] == 153_600 + 1_536
    assert counts["per_task_single"] == 231_936  # ≈ 232K
    assert counts["per_task_shared"] == pytest.approx(76_800 + 155_136 / 8)  # ≈ 96K
    assert counts["matches_paper"]
    small = efficiency.paper_param_counts(d=64, m=10, bottleneck=8, shared_tasks=2)
    assert small["per_task_single"] == 64 * 10 + 2 * 64 * 8 + 2 * 64


def test_grouped_batches_are_the_training_loop_s(efficiency):
    """The padding benchmark batches with the library's BatchStream: every example once, similar lengths."""
    from attempt.data.collate import Collator, make_examples
    from attempt.testing import build_tokenizer

    words = ["a", "the cat is on the mat and the dog is in the house with the child"]
    rows = [
        {
            "sentence1": " ".join(words[i % 2].split()[: 1 + (i % 2) * (8 - i // 2)]),
            "sentence2": "yes",
            "label": 0,
            "idx": i,
        }
        for i in range(8)
    ]
    collator = Collator(build_tokenizer("encoder"), "encoder", ["rte"])
    examples = make_examples("rte", rows)
    lengths = [collator.source_length(e) for e in examples]
    batches = efficiency.grouped_batches(examples, collator, batch=2)
    assert sorted(e["index"] for b in batches for e in b) == list(range(8))
    assert all(abs(lengths[b[0]["index"]] - lengths[b[-1]["index"]]) <= 2 for b in batches)


def test_tiny_run_writes_report(efficiency, tmp_path, data_dir):
    results = efficiency.run(tmp_path, "tiny", log=lambda *_: None)
    written = json.loads((tmp_path / "efficiency.json").read_text())
    for key in ("param_counts", "training", "memory", "padding", "evaluation", "targets", "plots"):
        assert key in written, key
    assert set(written["training"]) == {"tiny-encoder", "tiny-causal"}
    for entry in written["training"].values():
        for key in ("m=12", "m=4"):
            assert {"attempt", "prompt_tuning", "peft_prompt_tuning"} <= set(entry[key])
        assert set(entry["m=12"]) == set(efficiency.TIMED_METHODS)
    for memory in written["memory"].values():
        assert all("peak_mb" in memory[m] for m in efficiency.MEMORY_METHODS)
    for task in ("rte", "mnli"):
        assert written["padding"][task]["same_results"], written["padding"][task]
        tokens = written["padding"][task]["padded_tokens"]
        assert tokens["dynamic_grouped"] < tokens["padded_256"]
    assert set(written["evaluation"]["examples_per_s"]) == {
        "rank_classification",
        "rank_full_sequences",
        "generation",
    }
    assert written["evaluation"]["same_predictions"] is True
    batching = written["eval_batching"]
    assert (
        batching["same_predictions"] is True
        and batching["examples"] == efficiency.SIZES["tiny"]["sort_examples"]
    )
    assert set(batching["seconds"]) == {"length_sorted", "file_order"}
    report = (tmp_path / "efficiency.md").read_text()
    assert report.startswith("# Efficiency")
    assert report.count("Activation checkpointing: ATTEMPT's step ") == 2
    assert "wherever that costs < 1.3x plain ATTEMPT's step time" in report
    assert any("with / without activation checkpointing" in t["target"] for t in written["targets"])
    assert (tmp_path / "efficiency.png").stat().st_size > 1000
    assert all(t["passed"] in (True, False, None) for t in results["targets"])
