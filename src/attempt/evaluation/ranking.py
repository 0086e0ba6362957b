"""Ranking a library's source prompts for a new task: SPoT's selection (Vu et al., 2022).

Each source prompt is scored as it is, untrained, as the target prompt of the new task: the model SPoT would
start training from (prompt tuning with ``target_init="source"``, `attempt.runs.build.build_model` of a
``mode="spot"`` run before its first step), evaluated on the task's validation rows. The best-scoring prompt
is SPoT's source; the top k are a short list for ATTEMPT's ``source_prompts``. `attempt prompts rank` prints
this ranking, and the few-shot grid (benchmarks/reproduce_fewshot.py) made its SPoT choices the same way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from attempt.config import AttemptConfig
from attempt.evaluation.evaluate import evaluate
from attempt.modeling import AttemptModel
from attempt.prompts.library import SourcePrompt, check_compatible
from attempt.tasks import get_task


@dataclasses.dataclass(frozen=True)
class SourceScore:
    """One source prompt's untrained score on the target task.

    Attributes:
        name: the prompt's library name.
        score: the task's headline score (the mean of its metrics, as `evaluate` gives ``"average"``).
        metrics: every metric of the task.
        source_task: the task the prompt was trained on, if recorded.
    """

    name: str
    score: float
    metrics: dict[str, float]
    source_task: str | None


def spot_model(
    backbone: torch.nn.Module, tokenizer: Any, family: str, prompt: SourcePrompt, task: str,
    seed: int = 42, backbone_name: str | None = None,
) -> AttemptModel:  # fmt: skip
    """SPoT's model of `task` before any training: prompt tuning whose target prompt is a copy of `prompt`
    (an encoder backbone also gets the task's untrained head, seeded by `seed`)."""
    fields: dict[str, Any] = {
        "method": "prompt_tuning",
        "tasks": (task,),
        "seed": seed,
        "target_init": "source",
    }
    if family == "encoder":
        fields["num_labels"] = {task: get_task(task).num_labels}
    config = AttemptConfig(prompt_length=prompt.length, **fields)
    return AttemptModel.from_backbone(
        backbone, source_prompts=[prompt], config=config, tokenizer=tokenizer, backbone_name=backbone_name
    )


def rank_sources(
    backbone: torch.nn.Module, tokenizer: Any, family: str, prompts: Sequence[SourcePrompt], task: str,
    rows: Sequence[Mapping[str, Any]], *, method: str = "rank", batch_size: int = 32, max_source_length: int = 256,
    max_target_length: int = 16, seed: int = 42, backbone_name: str | None = None,
) -> list[SourceScore]:  # fmt: skip
    """Score every prompt as the untrained target prompt of `task` on `rows`; best first.

    Args:
        backbone, tokenizer, family: the frozen backbone the prompts were trained on (`load_backbone`).
        prompts: the candidates (e.g. ``PromptLibrary(path).load()``).
        task: the target task (registered: built in, or from a task file).
        rows: its labelled validation rows (e.g. `attempt.data.splits.paper_validation`).
        method, batch_size, max_source_length, max_target_length: as in `evaluate`.
        seed: seeds what is new in the model (an encoder's head); a prompt-based LM model has nothing new.
        backbone_name: recorded in the models (no effect on the scores).

    Returns:
        One `SourceScore` per prompt, highest score first; equal scores keep the order of `prompts` (as
        Python's ``max`` picks the first of equals).

    Raises:
        ValueError: no prompts, no rows, or a prompt of another width d than the backbone's.
    """
    name = get_task(task).name
    if not prompts:
        raise ValueError(
            "No source prompts to rank: the library is empty. Add some with `attempt prompts add`."
        )
    if not rows:
        raise ValueError(f"No validation rows of {name!r} to score the source prompts on.")
    check_compatible(list(prompts), backbone.get_input_embeddings().weight.shape[1])
    scores = []
    for prompt in prompts:
        model = spot_model(backbone, tokenizer, family, prompt, name, seed, backbone_name)
        metrics = evaluate(
            model, tokenizer, {name: rows}, method=method, batch_size=batch_size,
            max_source_length=max_source_length, max_target_length=max_target_length,
        )[name]  # fmt: skip
        scores.append(SourceScore(prompt.name, metrics["average"], dict(metrics), prompt.task))
    # stable: ties keep the order of `prompts`; a score that is not a number (NaN) goes last
    return sorted(scores, key=lambda s: (math.isnan(s.score), -s.score))


__all__ = ["SourceScore", "rank_sources", "spot_model"]
