"""What evaluation and training need from a model, whatever its class: two protocols (`typing.Protocol`).

`Predictor` is what `attempt.evaluation.evaluate` reads: `AttemptModel`, `FineTuneModel` (and their family subclasses) and
`attempt.modeling.zero_shot.ZeroShotModel` have it. `TrainableModel` adds what `attempt.training.loop` needs to optimise, save and
resume a model: `AttemptModel` and `FineTuneModel` have it. Both are structural: nothing inherits from them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch


class Predictor(Protocol):
    """A model `attempt.evaluation.evaluate` can score: a torch module with a backbone family and a task list.

    Attributes:
        family: "seq2seq", "causal" or "encoder": how predictions are made (head, rank or generation).
        tasks: the task names, in the order of the ``task_ids`` its inputs carry.
    """

    family: str
    training: bool

    @property
    def tasks(self) -> tuple[str, ...]: ...

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **inputs: Any
    ) -> Any:
        """forward: an output with ``.logits`` (encoders: (B, C) head logits) and ``.loss`` given labels;
        ``loss_only=True`` (what training passes) lets a model skip logits the loss does not need."""

    def generate(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, task_ids: torch.Tensor | None = None,
        **generate_kwargs: Any,
    ) -> torch.Tensor:  # fmt: skip
        """Generated token ids (causal: only the new ones)."""

    def score_candidates(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, task_ids: torch.Tensor | None = None,
        candidates: Sequence[Sequence[int]] = (),
    ) -> torch.Tensor:  # fmt: skip
        """(B, C) log p(candidate | input) of each candidate continuation."""

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


class TrainableModel(Predictor, Protocol):
    """A `Predictor` that `attempt.training.loop` can optimise, checkpoint, keep as best and reload."""

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained weights: what checkpoints and ``save_pretrained`` write."""

    def parameter_groups(
        self, prompt_lr: float, attention_lr: float | None = None, head_lr: float | None = None,
        weight_decay: float = 0.0,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Optimizer parameter groups, each with its own learning rate and weight decay."""

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the trained weights and the config needed to rebuild the model, atomically."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> Any: ...
