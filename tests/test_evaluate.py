"""Evaluation: rank classification against a hand computation, the predictions file, attention, predict."""

from __future__ import annotations

import json

import pytest
import torch

from attempt.config import AttemptConfig
from attempt.data.sources import load_split
from attempt.evaluation.evaluate import PREDICTION_KEYS, evaluate, predict
from attempt.modeling import AttemptModel
from attempt.prompts.library import SourcePrompt
from attempt.runs.build import load_run
from attempt.tasks import get_task
from attempt.testing import build_backbone, build_tokenizer


def sources(d: int = 32, m: int = 4) -> list[SourcePrompt]:
    torch.manual_seed(5)
    return [SourcePrompt(n, torch.randn(m, d), task=n) for n in ("mnli", "qnli")]


def attempt_model(family: str, tasks=("rte",), **fields) -> AttemptModel:
    config = AttemptConfig(tasks=tasks, prompt_length=4, bottleneck_size=8, **fields)
    return AttemptModel.from_backbone(build_backbone(family), source_prompts=sources(), config=config).eval()


@pytest.fixture(scope="module")
def rte_rows(data_dir):
    return load_split("rte", "validation", data_dir)[:6]


def test_rank_classification_picks_the_most_likely_label(tmp_path, rte_rows):
    model, tokenizer = attempt_model("seq2seq"), build_tokenizer("seq2seq")
    path = tmp_path / "predictions.jsonl"
    metrics = evaluate(
        model,
        tokenizer,
        {"rte": rte_rows},
        method="rank",
        batch_size=4,
        max_source_length=32,
        predictions_path=path,
    )
    records = [json.loads(line) for line in path.read_text().splitlines()]
    task = get_task("rte")

    expected = []
    for row in rte_rows:  # by hand: log p(label word | source) from the logits, per label
        enc = tokenizer(task.source_text(row), truncation=True, max_length=32, return_tensors="pt")
        scores = []
        for word in task.label_words:
            labels = tokenizer(word, return_tensors="pt")["input_ids"]  # word </s>
            with torch.no_grad():
                logits = model(
                    enc["input_ids"], enc["attention_mask"], labels=labels, task_ids=torch.tensor([0])
                ).logits
            scores.append(logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).sum().item())
        expected.append(task.label_words[max(range(len(scores)), key=scores.__getitem__)])
    assert [r["prediction"] for r in records] == expected
    correct = sum(r["prediction"] == r["reference"] for r in records)
    assert metrics["rte"]["accuracy"] == pytest.approx(100 * correct / len(rte_rows))
    assert metrics["average"] == metrics["rte"]["average"]

    for index, record in enumerate(records):
        assert set(record) == {*PREDICTION_KEYS, "attention_weights"}
        assert record["index"] == index and record["idx"] == rte_rows[index]["idx"]
        assert record["source"] == task.source_text(rte_rows[index])
        assert list(record["attention_weights"]) == ["mnli", "qnli", "target"]
        assert sum(record["attention_weights"].values()) == pytest.approx(1.0, abs=1e-5)


def test_attention_file_and_generation_with_a_causal_lm(tmp_path, rte_rows, data_dir):
    stsb = load_split("stsb", "validation", data_dir)[:3]
    model, tokenizer = attempt_model("causal", tasks=("rte", "stsb")), build_tokenizer("causal")
    attention_path = tmp_path / "attention.json"
    path = tmp_path / "predictions.jsonl"
    metrics = evaluate(
        model, tokenizer, {"rte": rte_rows[:3], "stsb": stsb}, method="generate", batch_size=2,
        max_source_length=32, max_target_length=4, predictions_path=path, attention_path=attention_path,
    )  # fmt: skip
    assert set(metrics) == {"rte", "stsb", "average"} and set(metrics["stsb"]) == {
        "pearson",
        "spearman",
        "average",
    }
    attention = json.loads(attention_path.read_text())
    assert set(attention) == {"rte", "stsb"} and metrics.attention == attention  # returned too
    assert json.loads(json.dumps(metrics)) == dict(metrics)  # the metrics serialise as a plain dict
    for weights in attention.values():
        assert set(weights) == {"mnli", "qnli", "target"} and sum(weights.values()) == pytest.approx(
            1.0, abs=1e-5
        )
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["task"] for r in records] == ["rte"] * 3 + ["stsb"] * 3
    assert all(isinstance(r["prediction"], str) for r in records)  # generated text


def test_encoder_head_argmax_and_regression(rte_rows, data_dir):
    model = AttemptModel.from_backbone(
        build_backbone("encoder"),
        config=AttemptConfig(
            method="prompt_tuning", tasks=("rte", "stsb"), prompt_length=4, num_labels={"rte": 2, "stsb": 1}
        ),
    ).eval()
    tokenizer = build_tokenizer("encoder")
    stsb = load_split("stsb", "validation", data_dir)[:3]
    out = predict(
        model, tokenizer, [{"task": "rte", **rte_rows[0]}, {"task": "stsb", **stsb[0]}], max_source_length=64
    )
    task = get_task("rte")
    enc = tokenizer(*task.text_fields(rte_rows[0]), return_tensors="pt")
    with torch.no_grad():
        logits = model(
            enc["input_ids"],
            enc["attention_mask"],
            task_ids=torch.tensor([0]),
            token_type_ids=enc["token_type_ids"],
        ).logits
        value = model(
            **tokenizer(*get_task("stsb").text_fields(stsb[0]), return_tensors="pt"),
            task_ids=torch.tensor([1]),
        ).logits[0, 0]
    assert out[0]["prediction"] == task.label_words[int(logits[0, :2].argmax())]
    assert out[1]["prediction"] == pytest.approx(float(value), abs=1e-5)
    assert "attention_weights" not in out[0]  # prompt tuning has no attention


def test_predict_keeps_input_order_across_mixed_tasks_without_labels(data_dir):
    model, tokenizer = attempt_model("seq2seq", tasks=("rte", "cb")), build_tokenizer("seq2seq")
    cb = load_split("cb", "validation", data_dir)[:2]
    rte = load_split("rte", "validation", data_dir)[:2]
    strip = lambda row: {k: v for k, v in row.items() if k != "label"}  # noqa: E731
    inputs = [
        {"task": "cb", **strip(cb[0])},
        {"task": "rte", **strip(rte[0])},
        {"task": "cb", **strip(cb[1])},
    ]
    out = predict(model, tokenizer, inputs, batch_size=2, max_source_length=128)  # the rows are read whole
    assert [r["task"] for r in out] == ["cb", "rte", "cb"] and [r["index"] for r in out] == [0, 1, 2]
    assert all(r["reference"] is None for r in out)
    assert (
        out[0]["prediction"] in get_task("cb").label_words
        and out[1]["prediction"] in get_task("rte").label_words
    )
    with pytest.raises(ValueError, match="not one of the model's tasks"):
        predict(model, tokenizer, [{"task": "sst2", "sentence": "good"}])


def test_load_run_needs_a_finished_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished training run"):
        load_run(tmp_path)


class _Gathered(Exception):
    """Raised by the first-pass fake gather: this shard's records are stashed, the rest is not needed yet."""


def test_sharded_evaluation_gathers_to_the_unsharded_result(tmp_path, rte_rows, data_dir):
    """Two "processes" (shard=(0, 2) and (1, 2)) with a fake gather that concatenates their records give the
    metrics, mean attention and predictions file of one unsharded evaluation, on both ranks."""
    model, tokenizer = attempt_model("seq2seq", tasks=("rte", "cb")), build_tokenizer("seq2seq")
    task_rows = {"rte": rte_rows[:5], "cb": load_split("cb", "validation", data_dir)[:3]}  # uneven shards
    # batch_size=1: each example runs alone in both set-ups, so records are bit-identical
    kwargs = dict(method="rank", batch_size=1, max_source_length=32)
    whole_path = tmp_path / "whole.jsonl"
    whole = evaluate(model, tokenizer, task_rows, predictions_path=whole_path, **kwargs)
    whole_attention = whole.attention

    stashed: dict[int, list] = {}  # first pass: what each rank hands to gather

    def stash(rank):
        def gather(local):
            stashed[rank] = local
            raise _Gathered

        return gather

    for rank in (0, 1):
        with pytest.raises(_Gathered):
            evaluate(model, tokenizer, task_rows, shard=(rank, 2), gather=stash(rank), **kwargs)
    [rte0, cb0], [rte1, cb1] = (
        stashed[0][0],
        stashed[1][0],
    )  # one item per process: that process's records per task
    assert [r["index"] for r in rte0] == [0, 2, 4] and [r["index"] for r in rte1] == [1, 3]
    assert [r["index"] for r in cb0] == [0, 2] and [r["index"] for r in cb1] == [1]

    def concatenate(rank):
        def gather(local):
            assert local == stashed[rank]
            return stashed[0] + stashed[1]  # accelerate.utils.gather_object: every process's items, in order

        return gather

    for rank in (0, 1):
        path = tmp_path / f"rank{rank}.jsonl"
        metrics = evaluate(
            model,
            tokenizer,
            task_rows,
            shard=(rank, 2),
            gather=concatenate(rank),
            predictions_path=path,
            **kwargs,
        )
        attention = metrics.attention
        assert metrics == whole and attention == whole_attention
        assert path.read_text() == whole_path.read_text()
        assert [json.loads(line)["index"] for line in path.read_text().splitlines()] == [
            0,
            1,
            2,
            3,
            4,
            0,
            1,
            2,
        ]
    # plain evaluate forwards them; one process (shard=(0, 1)) needs no gather
    assert evaluate(model, tokenizer, task_rows, shard=(1, 2), gather=concatenate(1), **kwargs) == whole
    assert evaluate(model, tokenizer, task_rows, shard=(0, 1), **kwargs) == whole


def test_sharded_evaluation_checks_its_arguments(rte_rows):
    model, tokenizer = attempt_model("seq2seq"), build_tokenizer("seq2seq")
    with pytest.raises(ValueError, match="pass gather="):
        evaluate(model, tokenizer, {"rte": rte_rows}, shard=(0, 2))
    with pytest.raises(ValueError, match="not a valid"):
        evaluate(model, tokenizer, {"rte": rte_rows}, shard=(2, 2), gather=lambda x: x)
    with pytest.raises(RuntimeError, match="exactly once"):  # a gather that loses the other process's rows
        evaluate(
            model,
            tokenizer,
            {"rte": rte_rows},
            shard=(0, 2),
            gather=lambda x: x,
            batch_size=4,
            max_source_length=32,
        )


def test_evaluation_batches_rows_of_similar_length_and_keeps_row_order(monkeypatch, data_dir):
    """Rows are batched longest first (less padding), and records still come back in row order."""
    from attempt.evaluation import evaluate as evaluation

    rows = load_split("rte", "validation", data_dir)[:12]
    model, tokenizer = attempt_model("seq2seq"), build_tokenizer("seq2seq")
    seen: list[list[int]] = []  # real lengths of the rows of each batch
    original = evaluation.Collator.__call__

    def spy(self, examples, for_generation=False):
        batch = original(self, examples, for_generation)
        seen.append(batch["attention_mask"].sum(-1).tolist())
        return batch

    monkeypatch.setattr(evaluation.Collator, "__call__", spy)
    records = predict(
        model, tokenizer, [{"task": "rte", **row} for row in rows], batch_size=4, max_source_length=256
    )  # longer than every row: predict refuses an input it would cut
    assert [r["index"] for r in records] == list(range(12))
    assert [r["idx"] for r in records] == [row["idx"] for row in rows]
    lengths = [length for batch in seen for length in batch]
    assert lengths == sorted(lengths, reverse=True) and len(lengths) == 12
    one_by_one = predict(
        model, tokenizer, [{"task": "rte", **row} for row in rows], batch_size=1, max_source_length=256
    )
    assert [r["prediction"] for r in records] == [r["prediction"] for r in one_by_one]
