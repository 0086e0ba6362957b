"""Source prompts and the on-disk prompt library (the library's JSON + safetensors format, the original
ATTEMPT `.pt` files, PEFT adapters), and the prompt libraries this repository ships.

Layer: above backbones. May import `attempt.utils`, `attempt.config`, `attempt.tasks`, `attempt.backbones`.
"""

from attempt.prompts.library import (
    PromptLibrary,
    SourcePrompt,
    read_original_prompt,
    read_peft_prompt,
    write_peft_adapter,
)

__all__ = ["PromptLibrary", "SourcePrompt", "read_original_prompt", "read_peft_prompt", "write_peft_adapter"]
