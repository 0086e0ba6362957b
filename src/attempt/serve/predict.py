"""Predicting one mixed-task batch of inputs, in the model's worker thread.

A batch holds inputs of any served tasks. It is split per run folder (each folder has its own trained mixture
over the shared backbone, so its inputs go through its own AttemptModel), then per inference path (head, rank
classification, generation: `attempt.evaluation.inference.path_of`); within a path the tasks share the passes,
each input getting its own task's prompt through ``task_ids`` (a pass may be cut into groups of similar input
lengths, `length_groups`, so that a CPU does not spend its time on padding).

Every pass is `attempt.evaluation.inference.infer_batch`, the function `attempt evaluate` and `attempt predict`
call: this module only groups the inputs and writes each answer as JSON (label word, per-label scores, value,
attention), so a served prediction is the one `attempt predict` writes for the same input.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from attempt.evaluation import inference
from attempt.serve.runs import ServedRun
from attempt.tasks import UNKNOWN_LABEL, Task


@dataclasses.dataclass
class Item:
    """One input waiting for its prediction (the batcher adds its future)."""

    run: ServedRun
    task: Task
    row: Mapping[str, Any]
    attention: bool = False
    length: int = 0  # source tokens, for sorting the batch


def _answered(run: ServedRun, items: Sequence[Item]) -> list[inference.Inference]:
    """One pass of `infer_batch` over inputs of one run folder on one path."""
    return inference.infer_batch(
        run.model,
        run.collator,
        [{"task": item.task.name, "row": item.row} for item in items],
        method=run.method,
        max_new_tokens=run.config.max_target_length,
        attention=any(item.attention for item in items),
    )


def _result(item: Item, answer: inference.Inference) -> dict[str, Any]:
    """The JSON answer to one input: its prediction, and per-label scores (classification), the value read
    (regression) or the label read from the text (generated classification); attention when asked for."""
    task = item.task
    if answer.path == "generate":
        result: dict[str, Any] = {"prediction": answer.value}
        if task.is_classification:
            parsed = task.parse_prediction(answer.value)
            result["label"] = task.label_words[parsed] if parsed != UNKNOWN_LABEL else None
        elif task.kind == "regression":
            result["value"] = _number(answer.value)
    elif answer.scores is None:  # the head's regression value
        result = {"prediction": _finite(answer.value), "value": _finite(answer.value)}
    else:
        words = task.label_words
        result = {"prediction": words[answer.value], "scores": _scores(words, answer.scores)}
    if item.attention and answer.attention is not None:
        result["attention_weights"] = answer.attention
    return result


def _number(text: str) -> float | None:
    try:
        return _finite(float(text))
    except ValueError:
        return None  # the model generated no number: say so rather than invent one


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity (Starlette refuses to encode them): a non-finite score is sent as null."""
    return value if math.isfinite(value) else None


def _scores(words: Sequence[str], values: Sequence[float]) -> dict[str, float | None]:
    return {word: _finite(value) for word, value in zip(words, values, strict=True)}


def length_groups(items: Sequence[Item], max_padding: float) -> list[list[int]]:
    """Positions of `items`, longest first, cut into groups whose padding stays within `max_padding` × their
    real tokens.

    On a CPU a forward costs about its padded tokens (longest input × rows): with one thread, 16 MiniLM pair
    inputs of 8-48 words took 383 ms in one forward and 400 ms one by one, but 316 ms as two forwards of
    similar lengths. On a GPU padding is nearly free and one forward is best: a large `max_padding`
    (``math.inf``) keeps one group.
    """
    order = sorted(range(len(items)), key=lambda i: -items[i].length)
    groups: list[list[int]] = []
    tokens = 0
    for position in order:
        length = max(items[position].length, 1)
        longest = items[groups[-1][0]].length if groups else 0
        if not groups or longest * (len(groups[-1]) + 1) > (1 + max_padding) * (tokens + length):
            groups.append([])
            tokens = 0
        groups[-1].append(position)
        tokens += length
    return groups


def predict_run(run: ServedRun, items: Sequence[Item], max_padding: float = math.inf) -> list[dict[str, Any]]:
    """Predict inputs of one run folder (any of its tasks): per inference path (head, rank, generate), one
    `infer_batch` pass per group of similar lengths (`length_groups`)."""
    results: list[dict[str, Any] | None] = [None] * len(items)
    paths: dict[str, list[int]] = {}
    for position, item in enumerate(items):
        paths.setdefault(inference.path_of(run.model, item.task, run.method), []).append(position)
    with torch.no_grad():
        for on_path in paths.values():
            for group in length_groups([items[p] for p in on_path], max_padding):
                positions = [on_path[g] for g in group]
                chosen = [items[p] for p in positions]
                for position, item, answer in zip(positions, chosen, _answered(run, chosen), strict=True):
                    results[position] = {"task": item.task.name, "run": run.name, **_result(item, answer)}
    return [r for r in results if r is not None]


def predict_batch(
    items: Sequence[Item], max_padding: float = math.inf
) -> list[dict[str, Any] | BaseException]:
    """Predict a mixed batch: one `predict_run` per run folder in it, results back in the batch's order.

    If a run folder's group fails, its inputs are predicted one by one, so an input that breaks the model
    fails alone (its outcome is the exception) and the other requests in the batch still get answers.
    """
    outcomes: list[dict[str, Any] | BaseException | None] = [None] * len(items)
    groups: dict[int, list[int]] = {}
    for position, item in enumerate(items):
        groups.setdefault(id(item.run), []).append(position)
    for positions in groups.values():
        run = items[positions[0]].run
        try:
            answered = predict_run(run, [items[p] for p in positions], max_padding)
        except Exception:
            answered = [_alone(run, items[p]) for p in positions]
        for position, outcome in zip(positions, answered, strict=True):
            outcomes[position] = outcome
    return [o for o in outcomes if o is not None]


def _alone(run: ServedRun, item: Item) -> dict[str, Any] | BaseException:
    try:
        return predict_run(run, [item])[0]
    except Exception as error:
        return error
