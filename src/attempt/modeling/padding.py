"""Decoder-only inputs are LEFT-padded for generation and scoring, so that every row ends at the last position
where the next token is predicted. Positions are counted from the attention mask, so a left-padded row
[pad, pad, x] gives x the positions of an unpadded one. Shared by the causal wrapper, the candidate scoring
and the decoder-only baselines."""

from __future__ import annotations

import torch


def positions(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) position ids counted over the real tokens of `mask` (0 on the padding)."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)  # (B, L)


def check_left_padded(mask: torch.Tensor | None, what: str) -> None:
    """Refuse a batch whose last position is padding: `what` (e.g. "generation") would continue a pad token."""
    if mask is not None and bool((mask[:, -1] == 0).any()):
        raise ValueError(
            f"Decoder-only {what} needs LEFT-padded inputs (left padding: set tokenizer.padding_side = 'left')."
        )
