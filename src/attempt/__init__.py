"""attempt: ATTEMPT (attentional mixtures of soft prompts) on any Hugging Face backbone.

    from attempt import AttemptConfig, AttemptModel, PromptLibrary
    model = AttemptModel.from_backbone(backbone, source_prompts=PromptLibrary("prompts").load(["mnli", "qnli"]),
                                       config=AttemptConfig(tasks=["rte"]))
"""

from attempt.config import AttemptConfig
from attempt.mixture import AttentionalMixture, AttentionModule
from attempt.modeling import AttemptModel, AttemptOutput
from attempt.prompts import (
    PromptLibrary,
    SourcePrompt,
    read_original_prompt,
    read_peft_prompt,
    write_peft_adapter,
)

__version__ = "0.1.0"

__all__ = [
    "AttemptConfig",
    "AttemptModel",
    "AttemptOutput",
    "AttentionModule",
    "AttentionalMixture",
    "PromptLibrary",
    "SourcePrompt",
    "__version__",
    "read_original_prompt",
    "read_peft_prompt",
    "write_peft_adapter",
]
