"""TrainConfig.seed reaches every new weight: attention, target prompt, encoder heads, LoRA."""

from __future__ import annotations

import torch

from attempt.config import TrainConfig
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.runs.build import build_model
from attempt.testing import build_backbone, build_tokenizer


def _library(path, d=32, m=4):
    library = PromptLibrary(path)
    if library.names():
        return path
    for i, name in enumerate(("mnli", "sst2")):
        library.add(
            SourcePrompt(
                name,
                torch.randn(m, d, generator=torch.Generator().manual_seed(i)),
                task=name,
                backbone="tiny",
            )
        )
    return path


def _initial(tmp_path, seed, mode="attempt", family="causal", **attempt):
    config = TrainConfig(
        mode=mode, tasks=("rte",), library=str(_library(tmp_path / "lib")), seed=seed,
        attempt={"prompt_length": 4, **attempt},
    )  # fmt: skip
    model = build_model(config, build_backbone(family), build_tokenizer(family), family)
    return {k: v.detach().clone() for k, v in model.trainable_state_dict().items()}


def _differs(a, b, key):
    return not torch.equal(a[key], b[key])


def test_seed_reaches_attention_and_vocab_target(tmp_path):
    one, again, two = (_initial(tmp_path, s, target_init="vocab") for s in (1, 1, 2))
    assert one.keys() == two.keys()
    for key in one:
        assert torch.equal(one[key], again[key]), key
    assert _differs(one, two, "mixture.attention.down.weight")
    assert _differs(one, two, "mixture.attention.up.weight")
    assert _differs(one, two, "mixture.target_prompts")


def test_seed_reaches_encoder_heads(tmp_path):
    one, again, two = (_initial(tmp_path, s, mode="prompt_tuning", family="encoder") for s in (1, 1, 2))
    heads = [k for k in one if k.startswith("head.")]
    assert heads
    for key in one:
        assert torch.equal(one[key], again[key]), key
    assert all(_differs(one, two, k) for k in heads if k.endswith("weight"))


def test_seed_reaches_lora_and_finetune_heads(tmp_path):
    one, again, two = (_initial(tmp_path, s, mode="lora", family="encoder") for s in (1, 1, 2))
    lora = [k for k in one if "lora_A" in k]
    assert lora
    for key in one:
        assert torch.equal(one[key], again[key]), key
    assert all(_differs(one, two, k) for k in lora)
