"""Rank classification without re-reading the input once per label.

`seq2seq_candidate_log_likelihoods` and `causal_candidate_log_likelihoods` score C candidate continuations (a
task's label words) for a batch of B (prompted) inputs. The input is encoded ONCE:

- seq2seq: the encoder runs on the B inputs; its states are repeated C times for the decoder, which reads
  only the short label sequences;
- causal: one pass over the B prompted inputs fills the key/value cache and gives the first label token's
  distribution; the cache is repeated C times and one more pass reads the candidates' remaining tokens.

Scoring every (input, label) pair as its own full sequence costs C full passes over prompt + input; this
costs one, plus C passes over a few label tokens. The scores equal the full-sequence ones (tested).

`causal_label_loss` does the same for training: a decoder-only row is input + label words, and only the few
positions that predict a label word need the LM head (a vocabulary-sized projection and softmax, about a fifth
of SmolLM2's forward pass), so it runs the head there alone. The loss equals the full one (tested).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from attempt.modeling.padding import check_left_padded, positions

IGNORE_INDEX = -100


def _padded(
    candidates: Sequence[Sequence[int]], value: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, T) ids padded on the right with `value`, and the (C, T) mask of real tokens."""
    if not candidates or any(len(ids) == 0 for ids in candidates):
        raise ValueError("Every candidate needs at least one token.")
    length = max(len(ids) for ids in candidates)
    ids = torch.full((len(candidates), length), value, dtype=torch.long, device=device)
    mask = torch.zeros(len(candidates), length, dtype=torch.bool, device=device)
    for row, tokens in enumerate(candidates):
        ids[row, : len(tokens)] = torch.tensor(list(tokens), dtype=torch.long, device=device)
        mask[row, : len(tokens)] = True
    return ids, mask


def label_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) summed log-probabilities of the label ids at positions where labels != -100: (B, T, V), (B, T)."""
    mask = labels != IGNORE_INDEX  # (B, T)
    log_probs = logits.float().log_softmax(-1)  # (B, T, V)
    picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return (picked * mask).sum(-1)


@functools.lru_cache(maxsize=32)
def takes_argument(forward_type: type, name: str) -> bool:
    """Whether ``forward_type.forward`` names the argument `name` (cached per class)."""
    return name in inspect.signature(forward_type.forward).parameters


def seq2seq_candidate_log_likelihoods(
    backbone: nn.Module,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    candidates: Sequence[Sequence[int]],
) -> torch.Tensor:
    """(B, C) summed log p(candidate | input) for an encoder-decoder backbone (T5, BART).

    Args:
        inputs_embeds: (B, S, d) encoder input embeddings (the prompt already prepended).
        attention_mask: (B, S).
        candidates: C token-id lists, each as the decoder's labels (eos included when the tokenizer adds it).
    """
    batch, count = inputs_embeds.shape[0], len(candidates)
    hidden = backbone.get_encoder()(
        inputs_embeds=inputs_embeds, attention_mask=attention_mask
    ).last_hidden_state
    labels, _ = _padded(candidates, IGNORE_INDEX, inputs_embeds.device)  # (C, T), -100 after the shorter ones
    labels = labels.repeat(batch, 1)  # (B*C, T), example-major
    out = backbone(
        encoder_outputs=BaseModelOutput(
            last_hidden_state=hidden.repeat_interleave(count, dim=0)
        ),  # (B*C, S, d)
        attention_mask=attention_mask.repeat_interleave(count, dim=0),
        labels=labels,
    )
    return label_log_likelihood(out.logits, labels).view(batch, count)


def causal_label_loss(backbone: nn.Module, labels: torch.Tensor, **inputs) -> torch.Tensor:
    """Scalar next-token loss of a decoder-only backbone over the label tokens, the LM head run only where a
    label is predicted; equal to the backbone's own ``backbone(**inputs, labels=labels).loss``.

    Args:
        backbone: a causal LM whose forward takes ``logits_to_keep`` (transformers 5 causal LMs do).
        labels: (B, S) aligned with the sequence, -100 where no loss (the prompt, the input, the padding).
        inputs: the backbone's inputs (input_ids or inputs_embeds, attention_mask, position_ids, ...);
            ``num_items_in_batch`` (from `transformers.Trainer`) divides the summed loss as the backbone's does.
    """
    count = inputs.pop("num_items_in_batch", None)
    targets = labels[:, 1:]  # (B, S-1): position t predicts token t+1
    # one index list for the whole batch (what logits_to_keep accepts since transformers 5.0): the positions
    # where any row predicts a label; the rows' other positions there get target -100 and add nothing
    keep = (targets != IGNORE_INDEX).any(0).nonzero().squeeze(-1)  # (K,)
    logits = backbone(**inputs, logits_to_keep=keep).logits  # (B, K, V)
    # as transformers' ForCausalLMLoss: float32 cross-entropy, a mean over the label tokens or a sum / count
    loss = nn.functional.cross_entropy(
        logits.float().flatten(0, 1),  # (B*K, V)
        targets[:, keep].flatten(),  # (B*K,)
        ignore_index=IGNORE_INDEX,
        reduction="mean" if count is None else "sum",
    )
    return loss if count is None else loss / torch.as_tensor(count, device=loss.device)


def causal_candidate_log_likelihoods(
    backbone: nn.Module,
    inputs_embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    candidates: Sequence[Sequence[int]],
    pad_token_id: int = 0,
) -> torch.Tensor:
    """(B, C) summed log p(candidate | input) for a decoder-only backbone, reusing the input's KV cache.

    Args:
        inputs_embeds: (B, S, d) embeddings of the LEFT-padded (prompted) input.
        attention_mask: (B, S), zeros on the left padding.
        candidates: C token-id lists continuing the input (e.g. " entailment" + eos).
        pad_token_id: the id put after the shorter candidates (masked out, never scored).
    """
    check_left_padded(attention_mask, "candidate scoring")
    batch, count = inputs_embeds.shape[0], len(candidates)
    ids, real = _padded(candidates, pad_token_id, inputs_embeds.device)  # (C, T)
    extra = {"logits_to_keep": 1} if takes_argument(type(backbone), "logits_to_keep") else {}
    prefix = backbone(
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        position_ids=positions(attention_mask),
        use_cache=True,
        **extra,
    )
    first = prefix.logits[:, -1].float().log_softmax(-1)[:, ids[:, 0]]  # (B, V) -> (B, C)
    if ids.shape[1] == 1:
        return first
    cache = prefix.cache if getattr(prefix, "cache", None) is not None else prefix.past_key_values
    cache_argument = (
        "cache" if takes_argument(type(backbone), "cache") else "past_key_values"
    )  # renamed in transformers 5
    cache.batch_repeat_interleave(count)  # (B*C, ...) in place, example-major
    rest = ids[:, :-1].repeat(batch, 1)  # (B*C, T-1): the tokens that predict tokens 2..T
    mask = torch.cat(
        [
            attention_mask.repeat_interleave(count, dim=0),
            real[:, :-1].repeat(batch, 1).to(attention_mask.dtype),
        ],
        dim=1,
    )  # (B*C, S+T-1)
    start = attention_mask.long().sum(-1).repeat_interleave(count).unsqueeze(-1)  # (B*C, 1)
    steps = start + torch.arange(rest.shape[1], device=rest.device)  # (B*C, T-1)
    logits = backbone(
        input_ids=rest, attention_mask=mask, position_ids=steps, **{cache_argument: cache}
    ).logits
    targets = ids[:, 1:].masked_fill(~real[:, 1:], IGNORE_INDEX).repeat(batch, 1)  # (B*C, T-1)
    return first + label_log_likelihood(logits, targets).view(batch, count)
