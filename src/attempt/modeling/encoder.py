"""Encoder-only backbones (BERT/MiniLM, RoBERTa, ...) with a trained classification or regression head."""

from __future__ import annotations

import torch
from torch import nn

from attempt.modeling.base import AttemptModel, AttemptOutput


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


class EncoderAttemptModel(AttemptModel):
    family = "encoder"

    def _build_head(self, hidden_size: int) -> nn.Module:
        labels = self.config.labels_per_task()
        if not labels:
            raise ValueError(
                "Encoder-only backbones need a head: set num_labels, e.g. AttemptConfig(num_labels=2) "
                "(1 for regression), or {'rte': 2, 'stsb': 1} for several tasks."
            )
        return ClassificationHeads(hidden_size, labels)

    def forward(self, input_ids, attention_mask=None, labels=None, task_ids=None, token_type_ids=None):
        """Args: input_ids/attention_mask/token_type_ids (B, L); labels (B,) class ids or float scores."""
        if task_ids is None:
            task_ids = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        inputs_embeds, mask, weights = self.prompted_inputs(input_ids, attention_mask, task_ids)
        extra = {}
        if token_type_ids is not None:
            zeros = token_type_ids.new_zeros(token_type_ids.shape[0], self.prompt_length)
            extra["token_type_ids"] = torch.cat([zeros, token_type_ids], dim=1)  # (B, m+L)
        hidden = self._encoder()(inputs_embeds=inputs_embeds, attention_mask=mask, **extra).last_hidden_state
        hidden = hidden[:, self.prompt_length :]  # (B, L, d): the input positions
        if self.config.head_pooling == "cls":
            pooled = hidden[:, 0]  # (B, d)
        else:
            real = mask[:, self.prompt_length :].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
            pooled = (hidden * real).sum(1) / real.sum(1).clamp(min=1)  # (B, d)
        logits = self.head(pooled.float(), task_ids, self.tasks)  # (B, C)
        loss = self._loss(logits, labels, task_ids) if labels is not None else None
        return AttemptOutput(loss=loss, logits=logits, attention_weights=weights)

    def _encoder(self) -> nn.Module:
        # a *ForSequenceClassification backbone carries its own (frozen, unused) head: call its encoder
        base = getattr(self.backbone, "base_model", self.backbone)
        return base

    def _loss(self, logits, labels, task_ids) -> torch.Tensor:
        total = logits.new_zeros(())
        for index in task_ids.unique().tolist():
            rows = task_ids == index
            head = self.head.heads[self.tasks[index]]
            if head.out_features == 1:
                total = total + nn.functional.mse_loss(
                    logits[rows, 0], labels[rows].to(logits.dtype), reduction="sum"
                )
            else:
                total = total + nn.functional.cross_entropy(
                    logits[rows, : head.out_features], labels[rows].long(), reduction="sum"
                )
        return total / labels.shape[0]
