"""attempt: ATTEMPT (attentional mixtures of soft prompts) on any Hugging Face backbone. ::

    from attempt import AttemptConfig, AttemptModel, PromptLibrary, load_backbone
    backbone, tokenizer, family = load_backbone("HuggingFaceTB/SmolLM2-135M-Instruct")
    model = AttemptModel.from_backbone(backbone, source_prompts=PromptLibrary("prompts").load(["mnli", "qnli"]),
                                       config=AttemptConfig(tasks=["rte"]))

What a user needs first is importable from here. The training and evaluation entry points (`TrainConfig`,
`train`, `evaluate`, `predict`, `predict_texts`, `load_backbone`, `load_run`) are imported on first use, so that
`import attempt` (and the `attempt` command's start-up) does not pay for Accelerate and the data stack. A trained
run's answers for raw texts, in one call: ``attempt.predict_texts("runs/reviews", ["this blender is wonderful"])``.

The package's layers, bottom to top (each imports only from its own layer or below; `lint-imports` checks it
against the contract in pyproject.toml): utils → config, tasks → backbones → prompts → data → mixture →
modeling → runs → evaluation → training → serve, quickstart → cli.
"""

from __future__ import annotations

import importlib
from typing import Any

from attempt.config import AttemptConfig, TrainConfig
from attempt.mixture import AttentionalMixture, AttentionModule
from attempt.modeling import AttemptModel, AttemptOutput
from attempt.prompts.library import (
    PromptLibrary,
    SourcePrompt,
    read_original_prompt,
    read_peft_prompt,
    write_peft_adapter,
)

__version__ = "0.1.0"

_LAZY = {  # name -> the module that defines it, imported on first use
    "train": "attempt.training.loop",
    "evaluate": "attempt.evaluation.evaluate",
    "predict": "attempt.evaluation.evaluate",
    "predict_texts": "attempt.evaluation.texts",
    "load_backbone": "attempt.backbones.resolve",
    "load_run": "attempt.runs.build",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attempt' has no attribute {name!r}")


__all__ = [
    "AttemptConfig",
    "AttemptModel",
    "AttemptOutput",
    "AttentionModule",
    "AttentionalMixture",
    "PromptLibrary",
    "SourcePrompt",
    "TrainConfig",
    "__version__",
    "evaluate",
    "load_backbone",
    "load_run",
    "predict",
    "predict_texts",
    "read_original_prompt",
    "read_peft_prompt",
    "train",
    "write_peft_adapter",
]
