"""ZeroShotModel: the bare backbone's rank classification, equal to scoring each label by hand."""

from __future__ import annotations

import pytest
import torch

from attempt.data.collate import Collator
from attempt.evaluation.evaluate import evaluate
from attempt.modeling.zero_shot import ZeroShotModel
from attempt.testing import build_backbone, build_tokenizer

ROWS = [
    {"sentence1": "the cat is on the house", "sentence2": "a cat is in the house", "label": 0, "idx": 0},
    {"sentence1": "the dog", "sentence2": "no dog", "label": 1, "idx": 1},
    {"sentence1": "a man is happy", "sentence2": "a man is sad and old", "label": 1, "idx": 2},
]


@pytest.mark.parametrize("family", ["causal", "seq2seq"])
def test_zero_shot_scores_equal_full_sequences_by_hand(family):
    backbone, tokenizer = build_backbone(family), build_tokenizer(family)
    model = ZeroShotModel(backbone, family, ["rte"])
    collator = Collator(tokenizer, family, ["rte"], 64, 8)
    examples = [{"task": "rte", "row": row, "index": i} for i, row in enumerate(ROWS)]
    batch = collator(examples, for_generation=True)
    candidates = collator.label_candidates("rte")
    scores = model.score_candidates(
        batch["input_ids"], batch["attention_mask"], batch["task_ids"], candidates
    )
    for b in range(len(examples)):
        real = batch["input_ids"][b][batch["attention_mask"][b].bool()].tolist()
        for c, ids in enumerate(candidates):
            with torch.no_grad():
                if family == "causal":
                    logits = backbone(input_ids=torch.tensor([real + ids])).logits[0].log_softmax(-1)
                    expected = sum(float(logits[len(real) - 1 + i, t]) for i, t in enumerate(ids))
                else:
                    logits = (
                        backbone(input_ids=torch.tensor([real]), labels=torch.tensor([ids]))
                        .logits[0]
                        .log_softmax(-1)
                    )
                    expected = sum(float(logits[i, t]) for i, t in enumerate(ids))
            assert float(scores[b, c]) == pytest.approx(expected, abs=1e-4), (b, c)


def test_zero_shot_evaluates_like_any_model_and_refuses_encoders():
    backbone, tokenizer = build_backbone("causal"), build_tokenizer("causal")
    metrics = evaluate(ZeroShotModel(backbone, "causal", ["rte"]), tokenizer, {"rte": ROWS}, method="rank")
    assert set(metrics) == {"rte", "average"} and 0 <= metrics["rte"]["accuracy"] <= 100
    with pytest.raises(ValueError, match="trained head"):
        ZeroShotModel(build_backbone("encoder"), "encoder", ["rte"])
