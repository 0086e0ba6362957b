"""One small wrapper per backbone family over the shared base in `base.py`.

Importing the package defines the three wrappers, so `AttemptModel.from_backbone` finds the one of any backbone.
"""

from __future__ import annotations

from attempt.modeling.base import AttemptModel, AttemptOutput
from attempt.modeling.causal import CausalAttemptModel
from attempt.modeling.encoder import EncoderAttemptModel
from attempt.modeling.seq2seq import Seq2SeqAttemptModel

__all__ = [
    "AttemptModel",
    "AttemptOutput",
    "CausalAttemptModel",
    "EncoderAttemptModel",
    "Seq2SeqAttemptModel",
]
