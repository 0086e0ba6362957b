"""Encoder-only backbones (BERT/MiniLM, RoBERTa, ...) with a trained classification or regression head."""

from __future__ import annotations

import torch
from torch import nn

from attempt.modeling.base import AttemptModel, AttemptOutput
from attempt.modeling.families import register
from attempt.modeling.heads import ClassificationHeads, per_task_loss, pool


@register("attempt")
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

    def forward(
        self, input_ids, attention_mask=None, labels=None, task_ids=None, token_type_ids=None, loss_only=False
    ):
        """Args: input_ids/attention_mask/token_type_ids (B, L); labels (B,) class ids or float scores;
        loss_only changes nothing here (the head's logits are (B, C))."""
        if task_ids is None:
            task_ids = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        inputs_embeds, mask, weights = self.prompted_inputs(input_ids, attention_mask, task_ids)
        extra = {}
        if token_type_ids is not None:
            zeros = token_type_ids.new_zeros(token_type_ids.shape[0], self.prompt_length)
            extra["token_type_ids"] = torch.cat([zeros, token_type_ids], dim=1)  # (B, m+L)
        hidden = self._encoder()(inputs_embeds=inputs_embeds, attention_mask=mask, **extra).last_hidden_state
        hidden = hidden[:, self.prompt_length :]  # (B, L, d): the input positions
        pooled = pool(hidden, mask[:, self.prompt_length :], self.config.head_pooling)  # (B, d)
        logits = self.head(pooled.float(), task_ids, self.tasks)  # (B, C)
        loss = per_task_loss(logits, labels, task_ids, self.head, self.tasks) if labels is not None else None
        return AttemptOutput(loss=loss, logits=logits, attention_weights=weights)

    def _encoder(self) -> nn.Module:
        # a *ForSequenceClassification backbone carries its own (frozen, unused) head: call its encoder
        base = getattr(self.backbone, "base_model", self.backbone)
        return base
