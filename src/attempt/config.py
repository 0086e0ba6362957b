"""Configuration dataclasses that validate themselves and round-trip through JSON.

`AttemptConfig` describes the prompt side of a model: the attentional mixture of the paper and the plain
prompt-tuning baseline share it. Training options live in `attempt.train.TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POOLINGS = ("max", "max_unmasked", "mean")
METHODS = ("attempt", "prompt_tuning")
TARGET_INITS = ("source", "vocab", "text")
HEAD_POOLINGS = ("mean", "cls")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid. Choose one of: {', '.join(choices)}.")


def config_from_dict(cls: type, data: dict[str, Any], *, what: str | None = None):
    """Build dataclass `cls` from `data`, rejecting unknown keys with the list of valid ones.

    Args:
        cls: a dataclass type.
        data: field values; lists become tuples where the field default is a tuple.
        what: how to name the config in errors (defaults to the class name).

    Returns:
        An instance of `cls` (its `__post_init__` validates the values).

    Raises:
        ValueError: on keys that are not fields of `cls`.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"Unknown {what or cls.__name__} key(s): {', '.join(unknown)}. Valid keys: {', '.join(sorted(names))}."
        )
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            v = data[f.name]
            values[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**values)


@dataclass
class AttemptConfig:
    """How target prompts are built from source prompts (the paper's defaults unless noted).

    Attributes:
        method: "attempt" (attentional mixture over source prompts) or "prompt_tuning" (a plain soft prompt;
            with `target_init="source"` this is SPoT).
        prompt_length: m, the number of prompt vectors.
        tasks: names of the target tasks; one target prompt each, one shared attention module.
        pooling: how the input is pooled into x̂: "max" over non-padding tokens (default; independent of
            padding), "max_unmasked" (the original code: padding included), "mean" over non-padding tokens.
        temperature: softmax temperature T; None means d·e as in the paper.
        bottleneck_size: width r of the attention projection W_down: d→r, W_up: r→d.
        train_layer_norm: train the LayerNorm's affine parameters (the original code never updates them;
            False keeps them at identity for exact reproduction).
        target_in_attention: the target prompt is one of the t+1 prompts attended over.
        target_residual: P_instance = P_tgt + Σ a_j P_j (False drops the P_tgt term).
        uniform_weights: replace the attention by uniform weights (the paper's averaging ablation).
        target_init: "source" (copy a source prompt), "vocab" (random vocabulary embeddings), or "text"
            (embeddings of `target_init_text`, repeated to m tokens); None means "source" when source
            prompts are given, else "vocab".
        target_init_source: name of the source prompt to copy; None means the first one (the original).
        target_init_text: text whose token embeddings initialise the target prompt when target_init="text".
        num_labels: classes of the head for encoder-only backbones (1 = regression); an int for every
            task, or a {task: n} mapping when the tasks differ.
        head_pooling: how encoder-only backbones pool hidden states for the head: "mean" or "cls".
        seed: seed used to initialise the new parameters.
    """

    method: str = "attempt"
    prompt_length: int = 100
    tasks: tuple[str, ...] = ("default",)
    pooling: str = "max"
    temperature: float | None = None
    bottleneck_size: int = 100
    train_layer_norm: bool = True
    target_in_attention: bool = True
    target_residual: bool = True
    uniform_weights: bool = False
    target_init: str | None = None
    target_init_source: str | None = None
    target_init_text: str | None = None
    num_labels: int | dict[str, int] | None = None
    head_pooling: str = "mean"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _choice("method", self.method, METHODS)
        _choice("pooling", self.pooling, POOLINGS)
        if self.target_init is not None:
            _choice("target_init", self.target_init, TARGET_INITS)
        _choice("head_pooling", self.head_pooling, HEAD_POOLINGS)
        if isinstance(self.tasks, str):
            self.tasks = (self.tasks,)
        self.tasks = tuple(self.tasks)
        if not self.tasks:
            raise ValueError("tasks must name at least one target task, e.g. tasks=('rte',).")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks has duplicates: {list(self.tasks)}. Name each target task once.")
        if int(self.prompt_length) < 1:
            raise ValueError(f"prompt_length must be >= 1, got {self.prompt_length}.")
        if int(self.bottleneck_size) < 1:
            raise ValueError(f"bottleneck_size must be >= 1, got {self.bottleneck_size}.")
        if self.temperature is not None and not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive number or None (= d·e), got {self.temperature}.")
        if self.target_init == "text" and not self.target_init_text:
            raise ValueError("target_init='text' needs target_init_text, e.g. target_init_text='Classify:'.")
        if isinstance(self.num_labels, dict):
            missing = sorted(set(self.tasks) - set(self.num_labels))
            if missing:
                raise ValueError(f"num_labels has no entry for task(s) {missing}; give one per task in tasks.")
        if self.num_labels is not None and any(int(n) < 1 for n in self.labels_per_task().values()):
            raise ValueError(f"num_labels must be >= 1 (1 means regression), got {self.num_labels}.")

    def labels_per_task(self) -> dict[str, int]:
        """{task: number of head outputs} for encoder-only backbones (empty when num_labels is None)."""
        if self.num_labels is None:
            return {}
        if isinstance(self.num_labels, dict):
            return {t: int(self.num_labels[t]) for t in self.tasks}
        return {t: int(self.num_labels) for t in self.tasks}

    def resolved_temperature(self, hidden_size: int) -> float:
        """The softmax temperature: the configured one, or d·e (the paper's default)."""
        return float(self.temperature) if self.temperature is not None else hidden_size * math.e

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tasks"] = list(self.tasks)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptConfig:
        return config_from_dict(cls, data)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text
