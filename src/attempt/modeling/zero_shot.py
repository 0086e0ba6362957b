"""The backbone as it is, with no prompt: the zero-shot baseline a trained prompt has to beat.

`ZeroShotModel` gives a frozen seq2seq or causal LM the interface `attempt.evaluation.evaluate.evaluate` reads (``family``,
``tasks``, ``score_candidates``, ``generate``), so the same rank classification, label words and test rows score
the bare backbone and a prompted one. It is not a prompt method (nothing trains), which is why it is its own
small class and not an AttemptModel with m = 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attempt.modeling.causal import pad_token_id
from attempt.modeling.scoring import causal_candidate_log_likelihoods, seq2seq_candidate_log_likelihoods


class ZeroShotModel(nn.Module):
    """A frozen LM backbone read without any prompt.

    Args:
        backbone: a seq2seq or causal Hugging Face LM.
        family: "seq2seq" or "causal" (encoders need a trained head, so they have no zero-shot score).
        tasks: the task names it is asked about (the same ones for every input).
    """

    def __init__(self, backbone: nn.Module, family: str, tasks: Sequence[str]):
        super().__init__()
        if family not in ("seq2seq", "causal"):
            raise ValueError(
                f"A zero-shot score needs a language model; a {family!r} backbone classifies with a trained head."
            )
        self.backbone = backbone.requires_grad_(False)
        self.family = family
        self.tasks = tuple(tasks)

    @torch.no_grad()
    def score_candidates(self, input_ids, attention_mask=None, task_ids=None, candidates=()) -> torch.Tensor:
        """(B, C) log p(candidate | input) of C label-word continuations (causal inputs LEFT-padded)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeds = self.backbone.get_input_embeddings()(input_ids)  # (B, L, d)
        if self.family == "seq2seq":
            return seq2seq_candidate_log_likelihoods(self.backbone, embeds, attention_mask, candidates)
        return causal_candidate_log_likelihoods(
            self.backbone, embeds, attention_mask, candidates, pad_token_id(self.backbone) or 0
        )

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, task_ids=None, **generate_kwargs) -> torch.Tensor:
        """The backbone's own greedy continuation (only the new ids for causal LMs, as AttemptModel returns)."""
        if self.family == "causal":
            generate_kwargs.setdefault("pad_token_id", pad_token_id(self.backbone))
        ids = self.backbone.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)
        return ids[:, input_ids.shape[1] :] if self.family == "causal" else ids
