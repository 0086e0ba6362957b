"""Decoder-only backbones (Llama/SmolLM2, Qwen2, GPT-2, Gemma, ...): the prompt goes before the input.

Positions are counted from the attention mask, so a left-padded row [P, pad, pad, x] gives the prompt
positions 0..m-1 and x positions m.., exactly like an unpadded row; `generate()` does the same.
"""

from __future__ import annotations

import functools

import torch

from attempt.modeling.base import AttemptModel, AttemptOutput
from attempt.modeling.families import register
from attempt.modeling.padding import check_left_padded, positions
from attempt.modeling.scoring import (
    causal_candidate_log_likelihoods,
    causal_label_loss,
    label_log_likelihood,
    takes_argument,
)


def pad_token_id(backbone) -> int | None:
    """The id that pads generated rows: the generation config's pad token, else its (first) eos token."""
    config = backbone.generation_config
    eos = config.eos_token_id
    return (
        config.pad_token_id if config.pad_token_id is not None else (eos[0] if isinstance(eos, list) else eos)
    )


def _input_only(mask: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor:
    """(B, L) 1 on the input tokens of a training row: real tokens that are not label tokens. A row that is
    all labels (plain language modelling) has no separate input: the attention reads all of it."""
    real = torch.ones_like(labels) if mask is None else mask
    read = real * (labels == -100).to(real.dtype)  # (B, L)
    return torch.where((read.sum(-1, keepdim=True) > 0), read, real)  # (B, L)


@register("attempt")
class CausalAttemptModel(AttemptModel):
    family = "causal"

    def forward(self, input_ids, attention_mask=None, labels=None, task_ids=None, loss_only=False, **kwargs):
        """Args: input_ids/attention_mask (B, L), labels (B, L) with -100 where no loss, task_ids (B,);
        loss_only: the caller reads only the loss (training), so the LM head runs on the label positions alone
        and ``logits`` is None (see `causal_label_loss`).

        Returns logits (B, L, V) aligned with input_ids (the prompt positions are dropped); the loss is the
        backbone's shifted next-token loss with -100 over the prompt.
        """
        # the attention reads the input only: the label words (labels != -100) come after it in the row
        read_mask = None if labels is None else _input_only(attention_mask, labels)
        inputs_embeds, mask, weights = self.prompted_inputs(input_ids, attention_mask, task_ids, read_mask)
        inputs = {"inputs_embeds": inputs_embeds, "attention_mask": mask, "position_ids": positions(mask)}
        if loss_only and labels is not None and self._keeps_logits:
            prompt = inputs_embeds.shape[1] - labels.shape[1]
            ignore = labels.new_full((labels.shape[0], prompt), -100)
            loss = causal_label_loss(self.backbone, torch.cat([ignore, labels], dim=1), **inputs, **kwargs)
            return AttemptOutput(loss=loss, logits=None, attention_weights=weights)
        # The LM head runs on the last prompt position and the input positions only (L+1 of m+L): the
        # prompt's own next-token logits are never used, and skipping them saves time and memory.
        keep = input_ids.shape[1] + 1
        if labels is not None:
            labels = torch.cat([labels.new_full((labels.shape[0], 1), -100), labels], dim=1)  # (B, L+1)
        if self._keeps_logits:
            kwargs["logits_to_keep"] = keep
        elif labels is not None:
            ignore = labels.new_full((labels.shape[0], self.prompt_length - 1), -100)
            labels = torch.cat([ignore, labels], dim=1)  # (B, m+L)
        out = self.backbone(**inputs, labels=labels, **kwargs)
        logits = out.logits[:, -keep + 1 :]  # (B, L, V)
        return AttemptOutput(loss=out.loss, logits=logits, attention_weights=weights)

    @functools.cached_property
    def _keeps_logits(self) -> bool:
        return takes_argument(type(self.backbone), "logits_to_keep")

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, task_ids=None, **generate_kwargs) -> torch.Tensor:
        """Generate continuations of LEFT-padded inputs, each with its own prompt. Returns only the new ids."""
        check_left_padded(attention_mask, "generation")
        inputs_embeds, mask, _ = self.prompted_inputs(input_ids, attention_mask, task_ids)
        generate_kwargs.setdefault("pad_token_id", pad_token_id(self.backbone))
        return self.backbone.generate(inputs_embeds=inputs_embeds, attention_mask=mask, **generate_kwargs)

    def sequence_log_likelihood(
        self, input_ids, attention_mask=None, labels=None, task_ids=None
    ) -> torch.Tensor:
        """(B,) sum of log p(tokens where labels != -100 | the tokens before them)."""
        logits = self(input_ids, attention_mask, labels=labels, task_ids=task_ids).logits  # (B, L, V)
        return label_log_likelihood(logits[:, :-1], labels[:, 1:])

    @torch.no_grad()
    def score_candidates(self, input_ids, attention_mask=None, task_ids=None, candidates=()) -> torch.Tensor:
        """(B, C) log p(candidate | input) of C continuations (token ids) of LEFT-padded inputs; the prompted
        input is read once and its key/value cache reused for every candidate."""
        inputs_embeds, mask, _ = self.prompted_inputs(input_ids, attention_mask, task_ids)
        return causal_candidate_log_likelihoods(
            self.backbone, inputs_embeds, mask, candidates, pad_token_id(self.backbone) or 0
        )
