"""What a run leaves to its backbone: the learning rate, batch size and prompt length it did not set, picked when
it starts (`attempt.config.BACKBONE_DEFAULTS`), and a warning when its source prompts come from another backbone.

A prompt-tuning learning rate that suits T5-base (0.3, the paper's) makes SmolLM2's loss jump from 3.3 to 11.5 at
step 2, so one default cannot fit every family: the family, known once the backbone is loaded, picks them, and
the run's train_config.json records the numbers.
"""

from __future__ import annotations

import dataclasses
import sys

from attempt.backbones.wheels import canonical_name
from attempt.config import TrainConfig
from attempt.prompts.library import PromptLibrary
from attempt.training.preflight import SOURCE_MODES


def _sources(config: TrainConfig) -> list:
    """The source prompts an attempt/spot run reads (all of its library when it names none); [] otherwise."""
    if config.mode not in SOURCE_MODES:
        return []
    library = PromptLibrary(config.library)
    return [library.get(name) for name in config.source_prompts or library.names()]


def with_backbone_defaults(
    config: TrainConfig, family: str, show: bool = True, checkpointable: bool = True
) -> TrainConfig:
    """`config` with its unset learning_rate, batch_size, prompt length, log_every and gradient_checkpointing
    picked for `family` (the prompt length of attempt/spot is its source prompts'; checkpointing by
    `attempt.config.CHECKPOINTED_FAMILIES`); prints one line saying what was picked when `show` (checkpointing
    only when picked on: off is what a run always did).

    Args:
        config: the run (its library resolved).
        family: the loaded backbone's family ("seq2seq", "causal" or "encoder").
        show: print the line (the main process only).
        checkpointable: the backbone supports activation checkpointing; if not, an unset
            gradient_checkpointing is off whatever the default says (a set True is refused when it loads).
    """
    lengths = {prompt.length for prompt in _sources(config)}
    resolved = config.with_backbone_defaults(family, lengths.pop() if len(lengths) == 1 else None)
    if not checkpointable and config.gradient_checkpointing is None:
        resolved = dataclasses.replace(resolved, gradient_checkpointing=False)
    before, after = config.to_dict(), resolved.to_dict()
    before_length = before["attempt"].get("prompt_length")
    picked = [f"{key} {after[key]:g}" for key in ("learning_rate", "batch_size") if before[key] is None]
    if before_length is None and "prompt_length" in after["attempt"]:
        picked.append(f"prompt_length {after['attempt']['prompt_length']}")
    if before["gradient_checkpointing"] is None and after["gradient_checkpointing"]:  # off: nothing changes
        picked.append("gradient_checkpointing on")
    if show and picked:
        print(
            f"[attempt] {family} backbone: {', '.join(picked)} (unset, so picked for it; set them to change)"
        )
    return resolved


def other_backbone_warning(config: TrainConfig) -> str | None:
    """One line when the run's source prompts were trained on another backbone than the run's (None otherwise):
    the attention then mixes vectors that mean nothing to this backbone."""
    others: dict[str, list[str]] = {}
    for prompt in _sources(config):
        if prompt.backbone and canonical_name(prompt.backbone) != canonical_name(config.backbone):
            others.setdefault(prompt.backbone, []).append(prompt.name)
    if not others:
        return None
    trained = "; ".join(f"{', '.join(names)} on {backbone}" for backbone, names in others.items())
    return (
        f"[attempt] warning: source prompts trained on another backbone than {config.backbone} ({trained}); "
        f"use that backbone (--backbone), or train sources for this one (attempt train-source)."
    )


def warn_other_backbone(config: TrainConfig, show: bool = True) -> None:
    """Print `other_backbone_warning` on stderr when there is one and `show`."""
    warning = other_backbone_warning(config)
    if warning and show:
        print(warning, file=sys.stderr)
