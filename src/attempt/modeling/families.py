"""The one family registry: which model class of each kind (ATTEMPT, fine-tuning) serves a backbone family.

Each family class registers itself where it is defined, with the `register` decorator::

    @register("attempt")
    class CausalAttemptModel(AttemptModel):
        family = "causal"

and `class_for` looks one up for a backbone (its family from `attempt.backbones.resolve.family_of`), so
`AttemptModel.from_backbone` and `FineTuneModel.from_backbone` pick their subclass the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from attempt.backbones.resolve import family_of

KINDS = ("attempt", "finetune")

_CLASSES: dict[tuple[str, str], type] = {}  # (kind, family) -> class
Model = TypeVar("Model", bound=type)


def register(kind: str) -> Callable[[Model], Model]:
    """A class decorator: the class is the `kind` model of the backbone family in its ``family`` attribute.

    Raises:
        ValueError: an unknown `kind`, or a class without a ``family``.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown model kind {kind!r}. Choose one of: {', '.join(KINDS)}.")

    def add(cls: Model) -> Model:
        family = getattr(cls, "family", "")
        if not family:
            raise ValueError(f"{cls.__name__} has no family: set family = 'seq2seq', 'causal' or 'encoder'.")
        _CLASSES[(kind, family)] = cls
        return cls

    return add


def family_class(kind: str, family: str) -> type:
    """The `kind` model class registered for a backbone `family` ("seq2seq", "causal" or "encoder").

    Raises:
        ValueError: nothing is registered for (kind, family).
    """
    if (kind, family) not in _CLASSES:
        known = sorted(f for k, f in _CLASSES if k == kind)
        raise ValueError(
            f"No {kind} model for the {family!r} backbone family (registered: {', '.join(known) or 'none'}); "
            "register one with @attempt.modeling.families.register."
        )
    return _CLASSES[(kind, family)]


def class_for(kind: str, backbone_config: Any) -> type:
    """The `kind` model class for a backbone's config (its family: `attempt.backbones.resolve.family_of`)."""
    return family_class(kind, family_of(backbone_config))
