"""Encoder-decoder backbones (T5, BART, ...): the prompt is prepended to the encoder input."""

from __future__ import annotations

import torch

from attempt.modeling.base import AttemptModel, AttemptOutput
from attempt.modeling.families import register
from attempt.modeling.scoring import label_log_likelihood, seq2seq_candidate_log_likelihoods


@register("attempt")
class Seq2SeqAttemptModel(AttemptModel):
    family = "seq2seq"

    def forward(
        self, input_ids, attention_mask=None, labels=None, task_ids=None, decoder_input_ids=None, loss_only=False,
        **kwargs,
    ):  # fmt: skip
        """Args: input_ids/attention_mask (B, L), labels (B, T) with -100 on padding, task_ids (B,); loss_only
        changes nothing here (the decoder's logits cover the few label tokens only)."""
        inputs_embeds, mask, weights = self.prompted_inputs(input_ids, attention_mask, task_ids)
        out = self.backbone(
            inputs_embeds=inputs_embeds,
            attention_mask=mask,
            labels=labels,
            decoder_input_ids=decoder_input_ids,
            **kwargs,
        )
        return AttemptOutput(loss=out.loss, logits=out.logits, attention_weights=weights)  # logits (B, T, V)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, task_ids=None, **generate_kwargs) -> torch.Tensor:
        """Generate with each instance's own prompt (its task's, mixed per instance). Returns decoder ids."""
        inputs_embeds, mask, _ = self.prompted_inputs(input_ids, attention_mask, task_ids)
        return self.backbone.generate(inputs_embeds=inputs_embeds, attention_mask=mask, **generate_kwargs)

    def sequence_log_likelihood(
        self, input_ids, attention_mask=None, labels=None, task_ids=None
    ) -> torch.Tensor:
        """(B,) sum of log p(label tokens | input): rank classification scores each verbalizer with it."""
        logits = self(input_ids, attention_mask, labels=labels, task_ids=task_ids).logits  # (B, T, V)
        return label_log_likelihood(logits, labels)

    @torch.no_grad()
    def score_candidates(self, input_ids, attention_mask=None, task_ids=None, candidates=()) -> torch.Tensor:
        """(B, C) log p(candidate | input) of C label sequences (token ids), the input encoded once."""
        inputs_embeds, mask, _ = self.prompted_inputs(input_ids, attention_mask, task_ids)
        return seq2seq_candidate_log_likelihoods(self.backbone, inputs_embeds, mask, candidates)
