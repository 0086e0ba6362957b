"""The encoder family's head layer, shared by `EncoderAttemptModel` and the encoder baselines (`attempt.modeling.finetune`):
pooling the input's hidden states, one linear head per task, and the per-task loss."""

from __future__ import annotations

import torch
from torch import nn


class ClassificationHeads(nn.Module):
    """One linear head per task over the pooled hidden state (1 output = regression)."""

    def __init__(self, hidden_size: int, labels_per_task: dict[str, int], dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({task: nn.Linear(hidden_size, n) for task, n in labels_per_task.items()})

    def forward(self, pooled: torch.Tensor, task_ids: torch.Tensor, tasks: tuple[str, ...]) -> torch.Tensor:
        """(B, d) → (B, C) with C the largest head; classes a task lacks get -inf."""
        width = max(h.out_features for h in self.heads.values())
        logits = pooled.new_full((pooled.shape[0], width), float("-inf"))  # (B, C)
        pooled = self.dropout(pooled)
        for index in task_ids.unique().tolist():
            rows = task_ids == index
            head = self.heads[tasks[index]]
            logits[rows, : head.out_features] = head(pooled[rows]).to(logits.dtype)
        return logits


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, L, d) hidden states of the input tokens → (B, d): the first token ("cls") or the mean over the real
    tokens of `mask` (B, L) ("mean"; an all-padding row gives zeros, not NaN)."""
    if how == "cls":
        return hidden[:, 0]
    real = mask.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
    return (hidden * real).sum(1) / real.sum(1).clamp(min=1)  # (B, d)


def per_task_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    task_ids: torch.Tensor,
    heads: ClassificationHeads,
    tasks: tuple[str, ...],
) -> torch.Tensor:
    """Mean over the batch of each row's own task loss: cross-entropy over that task's classes, or squared
    error for a regression head (1 output). logits (B, C), labels (B,), task_ids (B,)."""
    total = logits.new_zeros(())
    for index in task_ids.unique().tolist():
        rows = task_ids == index
        head = heads.heads[tasks[index]]
        if head.out_features == 1:
            total = total + nn.functional.mse_loss(
                logits[rows, 0], labels[rows].to(logits.dtype), reduction="sum"
            )
        else:
            total = total + nn.functional.cross_entropy(
                logits[rows, : head.out_features], labels[rows].long(), reduction="sum"
            )
    return total / labels.shape[0]
