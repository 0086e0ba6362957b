"""One small wrapper per backbone family over the shared base in `base.py`."""

from __future__ import annotations

from attempt.modeling.base import AttemptModel, AttemptOutput
from attempt.modeling.causal import CausalAttemptModel
from attempt.modeling.encoder import EncoderAttemptModel
from attempt.modeling.seq2seq import Seq2SeqAttemptModel

WRAPPERS: dict[str, type[AttemptModel]] = {
    "seq2seq": Seq2SeqAttemptModel,
    "causal": CausalAttemptModel,
    "encoder": EncoderAttemptModel,
}


def wrapper_for(backbone_config) -> type[AttemptModel]:
    """The AttemptModel subclass for a backbone's config (see `attempt.resolve.family_of`)."""
    from attempt.resolve import family_of

    return WRAPPERS[family_of(backbone_config)]


__all__ = [
    "AttemptModel",
    "AttemptOutput",
    "CausalAttemptModel",
    "EncoderAttemptModel",
    "Seq2SeqAttemptModel",
    "WRAPPERS",
    "wrapper_for",
]
