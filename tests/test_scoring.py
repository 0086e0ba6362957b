"""Rank classification reads the input once: `score_candidates` equals scoring every (input, label) pair as
its own full sequence with `sequence_log_likelihood`, on every LM wrapper and on the baselines."""

from __future__ import annotations

import pytest
import torch

from attempt.data.collate import Collator, make_examples
from attempt.evaluation.evaluate import predict
from attempt.modeling.finetune import FineTuneModel
from attempt.tasks import get_task
from attempt.testing import build_backbone, build_tokenizer
from test_modeling import build

LMS = [("seq2seq", None), ("seq2seq", "bart"), ("causal", None), ("causal", "gpt2"), ("causal", "qwen2")]
TEXTS = ["the cat is happy", "a dog", "the movie was great and good", "no"]
TASK_IDS = torch.tensor([0, 1, 0, 1])  # a mixed-task batch: rte, cb, rte, cb
# candidates of different lengths (ids of the tiny vocabulary; 4 = </s>)
CANDIDATES = [[40, 41, 4], [42, 4], [43, 44, 45, 46, 4]]


def _inputs(family: str, left: bool) -> dict[str, torch.Tensor]:
    tokenizer = build_tokenizer(family)
    if family == "causal":
        tokenizer.padding_side = "left" if left else "right"
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _full_sequence_scores(model, family: str) -> torch.Tensor:
    """(B, C) by the slow route: one full (input + candidate) sequence per pair."""
    columns = []
    for candidate in CANDIDATES:
        if family == "seq2seq":
            enc = _inputs(family, left=False)
            labels = torch.tensor([candidate] * len(TEXTS))  # (B, T)
            columns.append(
                model.sequence_log_likelihood(enc["input_ids"], enc["attention_mask"], labels, TASK_IDS)
            )
            continue
        sources = [build_tokenizer("causal")(text)["input_ids"] for text in TEXTS]
        length = max(len(s) for s in sources) + len(candidate)
        ids = torch.zeros(len(TEXTS), length, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for row, source in enumerate(sources):  # right padding, as in training
            sequence = source + candidate
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
            labels[row, len(source) : len(sequence)] = torch.tensor(candidate)
        columns.append(model.sequence_log_likelihood(ids, mask, labels, TASK_IDS))
    return torch.stack(columns, dim=1)


def _fast_scores(model, family: str) -> torch.Tensor:
    enc = _inputs(family, left=True)
    return model.score_candidates(enc["input_ids"], enc["attention_mask"], TASK_IDS, CANDIDATES)


@pytest.mark.parametrize(("family", "arch"), LMS)
@pytest.mark.parametrize("method", ["attempt", "prompt_tuning"])
def test_score_candidates_equals_full_sequence_scoring(family, arch, method):
    model = build(family, arch, method=method).eval()
    with torch.no_grad():
        slow = _full_sequence_scores(model, family)
    fast = _fast_scores(model, family)
    assert fast.shape == (len(TEXTS), len(CANDIDATES))
    assert (fast < 0).all()
    torch.testing.assert_close(fast, slow, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("family", "arch"), [("seq2seq", None), ("causal", None), ("causal", "gpt2")])
@pytest.mark.parametrize("mode", ["finetune", "lora"])
def test_baseline_score_candidates_equals_full_sequence_scoring(family, arch, mode):
    model = FineTuneModel.from_backbone(
        build_backbone(family, arch=arch), mode=mode, tasks=["rte", "cb"]
    ).eval()
    if mode == "lora":  # non-zero adapters, so that they must be used for the scores to agree
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.5)
    with torch.no_grad():
        slow = _full_sequence_scores(model, family)
    torch.testing.assert_close(_fast_scores(model, family), slow, atol=1e-4, rtol=1e-4)


def test_single_token_candidates_use_the_prefix_pass_only():
    model = build("causal").eval()
    enc = _inputs("causal", left=True)
    one = model.score_candidates(enc["input_ids"], enc["attention_mask"], TASK_IDS, [[40], [42]])
    longer = model.score_candidates(enc["input_ids"], enc["attention_mask"], TASK_IDS, [[40, 4], [42, 4]])
    assert one.shape == (4, 2) and bool((longer < one).all())  # adding a token only lowers the likelihood


def test_causal_scoring_rejects_right_padding():
    model = build("causal").eval()
    enc = _inputs("causal", left=False)
    with pytest.raises(ValueError, match="LEFT-padded"):
        model.score_candidates(enc["input_ids"], enc["attention_mask"], TASK_IDS, CANDIDATES)


def test_label_candidates_match_the_training_targets():
    for family in ("seq2seq", "causal"):
        tokenizer = build_tokenizer(family)
        collator = Collator(tokenizer, family, ["rte"], 64, 8)
        candidates = collator.label_candidates("rte")
        for label, candidate in enumerate(candidates):
            row = {"sentence1": "the cat", "sentence2": "a dog", "label": label}
            batch = collator(make_examples("rte", [row]))
            labels = batch["labels"][0]
            assert labels[labels != -100].tolist() == candidate
    with pytest.raises(ValueError, match="classification task"):
        Collator(build_tokenizer("seq2seq"), "seq2seq", ["stsb"], 64, 8).label_candidates("stsb")


@pytest.mark.parametrize(("family", "arch"), [("seq2seq", None), ("causal", "qwen2")])
def test_rank_evaluation_predicts_the_argmax_of_full_sequence_scores(family, arch):
    """End to end: predict(method="rank") agrees with argmax over independently computed full-sequence scores."""
    model = build(family, arch, tasks=("rte",)).eval()
    tokenizer = build_tokenizer(family)
    rows = [
        {"sentence1": text, "sentence2": "the dog", "label": i % 2, "idx": i} for i, text in enumerate(TEXTS)
    ]
    collator = Collator(tokenizer, family, ["rte"], 64, 8)
    expected = []
    with torch.no_grad():
        for row in rows:
            scores = []
            for label in (0, 1):
                batch = collator(make_examples("rte", [{**row, "label": label}]))
                scores.append(
                    float(
                        model.sequence_log_likelihood(
                            batch["input_ids"], batch["attention_mask"], batch["labels"], batch["task_ids"]
                        )[0]
                    )
                )
            expected.append(max((0, 1), key=lambda k: scores[k]))
    words = [
        r["prediction"]
        for r in predict(
            model,
            tokenizer,
            [{"task": "rte", **row} for row in rows],
            method="rank",
            batch_size=3,
            max_source_length=64,
            max_target_length=8,
        )
    ]
    assert words == [get_task("rte").label_words[label] for label in expected]
