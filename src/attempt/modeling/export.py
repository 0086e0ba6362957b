"""An ATTEMPT model's prompt for one task at one fixed mixture, written as a PEFT prompt-tuning adapter.

PEFT's prompt tuning prepends one learned prompt to every input; ATTEMPT computes a prompt per input, because its
attention reads the input (and PEFT's ``get_prompt(batch_size, task_ids)`` never sees it). So the export keeps the
task's target prompt, the source prompts and ONE mixture of them (a weight per prompt, e.g. the task's mean
attention over its validation rows: ``evaluate(...).attention[task]``), folded into a single m × d prompt,
``P = P_tgt + Σ_j a_j P_j`` (`attempt.mixture.AttentionalMixture.mix`). It loses the per-input choice: every input
gets that one mixture, and the attention module (W_down, W_up, LayerNorm) is not exported. The adapter then is
exactly the AttemptModel with its attention frozen to those weights (tests/test_prompts.py); where the weights
barely vary across inputs (docs/results/attention_per_input.md: a task-level mixture), little is lost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch

from attempt.modeling.base import AttemptModel
from attempt.prompts.library import write_peft_adapter

PEFT_TASK_TYPE = {"causal": "CAUSAL_LM", "seq2seq": "SEQ_2_SEQ_LM"}  # an encoder's head is no prompt


def fixed_prompt(model: AttemptModel, task: str, weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """The (m, d) prompt `model` gives every input of `task` when its attention is frozen to `weights`.

    Args:
        model: an AttemptModel (ATTEMPT, or prompt tuning: then the target prompt itself, and no weights).
        task: one of its tasks.
        weights: ``{prompt name: weight}`` over the attended prompts (the source names, and "target" when the
            target is attended), summing to 1, as the attention's outputs do.

    Raises:
        ValueError: an unknown task, or weights missing, extra, negative, not finite or not summing to 1.
    """
    if task not in model.tasks:
        raise ValueError(f"Task {task!r} is not one of the model's tasks {list(model.tasks)}.")
    mixture = model.mixture
    target = mixture.target_prompts[model.tasks.index(task)].detach()[None]  # (1, m, d)
    if not mixture.uses_attention:
        if weights:
            raise ValueError("A prompt-tuning model has no attention: export it without weights.")
        return target[0].float().cpu()
    names = list(mixture.source_names) + (["target"] if mixture.config.target_in_attention else [])
    given = dict(weights or {})
    if sorted(given) != sorted(names):
        raise ValueError(f"weights must name exactly the attended prompts {names}; got {sorted(given)}.")
    values = torch.tensor([float(given[name]) for name in names], device=target.device)  # (K,)
    if (
        not torch.isfinite(values).all()
        or (values < 0).any()
        or not math.isclose(values.sum().item(), 1, abs_tol=1e-4)
    ):
        raise ValueError(
            f"weights must be finite, at least 0 and sum to 1, as the attention's do; got {given}."
        )
    with torch.no_grad():
        return mixture.mix(values[None], target)[0].float().cpu()


def export_peft(
    model: AttemptModel, task: str, out_dir: str | Path, weights: Mapping[str, float] | None = None
) -> Path:
    """Write `fixed_prompt(model, task, weights)` as a PEFT prompt-tuning adapter (`write_peft_adapter`) for the
    model's backbone; returns the adapter folder. See the module for what it keeps and loses.

    Raises:
        ValueError: `fixed_prompt`'s errors, or an encoder backbone (its task head is not part of an adapter).
    """
    if model.family not in PEFT_TASK_TYPE:
        raise ValueError(
            f"A {model.family} model answers with its task head, which a PEFT prompt-tuning adapter cannot hold."
        )
    prompt = fixed_prompt(model, task, weights)
    return write_peft_adapter(prompt, out_dir, model.backbone_name, task_type=PEFT_TASK_TYPE[model.family])


__all__ = ["PEFT_TASK_TYPE", "export_peft", "fixed_prompt"]
