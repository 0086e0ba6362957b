"""Predicting one mixed-task batch of inputs, in the model's worker thread.

A batch holds inputs of any served tasks. It is split per run folder (each folder has its own trained mixture
over the shared backbone, so its inputs go through its own AttemptModel); within a run folder the tasks share
the passes, each input getting its own task's prompt through ``task_ids`` (a pass may be cut into groups of
similar input lengths, `length_groups`, so that a CPU does not spend its time on padding):

- encoder backbones: one forward through the heads (each row reads its task's head);
- LM backbones, rank classification: one `score_candidates` pass that reads every input once and scores the
  union of the batch's label words; each row keeps its own task's columns (a candidate's log-likelihood does
  not depend on the other candidates, so this equals scoring each task alone);
- LM backbones, generation (regression, QA, or ``method="generate"``): one greedy `generate` call.

These are the calls `attempt.evaluation.evaluate` makes, with the same collator and arguments, so a served prediction
is the one `attempt predict` writes for the same input.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

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


def _placeholder_label(task: Task, row: Mapping[str, Any]) -> dict[str, Any]:
    """The encoder collator builds a labels tensor; an unlabelled input gets a valid placeholder (unused)."""
    row = dict(row)
    if row.get(task.label_field) is None:
        if task.is_classification:
            row[task.label_field] = task.raw_labels[0] if task.raw_labels is not None else 0
        else:
            row[task.label_field] = 0.0 if task.kind == "regression" else [""]
    return row


def _tensors(run: ServedRun, items: Sequence[Item], for_generation: bool) -> dict[str, torch.Tensor]:
    examples = [{"task": item.task.name, "row": _placeholder_label(item.task, item.row)} for item in items]
    batch = run.collator(examples, for_generation=for_generation)
    device = next(run.model.parameters()).device
    return {name: tensor.to(device) for name, tensor in batch.items() if name != "labels"}


def _head_results(
    run: ServedRun, items: Sequence[Item], batch: dict[str, torch.Tensor]
) -> list[dict[str, Any]]:
    logits = run.model(**batch).logits.float()  # (B, C), -inf beyond a task's classes
    results = []
    for row, item in enumerate(items):
        if item.task.kind == "regression":
            value = float(logits[row, 0])
            results.append({"prediction": _finite(value), "value": _finite(value)})
            continue
        scores = logits[row, : item.task.num_labels].log_softmax(-1)
        words = item.task.label_words
        results.append({"prediction": words[int(scores.argmax())], "scores": _scores(words, scores)})
    return results


def _rank_results(
    run: ServedRun, items: Sequence[Item], batch: dict[str, torch.Tensor]
) -> list[dict[str, Any]]:
    union: list[list[int]] = []  # every distinct label-word token list of the batch's tasks
    columns: dict[str, list[int]] = {}
    for task in {item.task.name: item.task for item in items}.values():
        for ids in run.collator.label_candidates(task):
            if ids not in union:
                union.append(ids)
        columns[task.name] = [union.index(ids) for ids in run.collator.label_candidates(task)]
    scores = run.model.score_candidates(
        batch["input_ids"], batch["attention_mask"], batch["task_ids"], union
    ).float()
    results = []
    for row, item in enumerate(items):
        own = scores[row, columns[item.task.name]]  # (C,) in label-id order, as evaluate ranks them
        words = item.task.label_words
        results.append({"prediction": words[int(own.argmax())], "scores": _scores(words, own)})
    return results


def _generated_results(
    run: ServedRun, items: Sequence[Item], batch: dict[str, torch.Tensor]
) -> list[dict[str, Any]]:
    tokenizer = run.collator.tokenizer
    kwargs: dict[str, Any] = {
        "max_new_tokens": run.config.max_target_length,
        "do_sample": False,
        "num_beams": 1,
    }
    if run.model.family == "causal" and tokenizer.eos_token_id is not None:
        kwargs["eos_token_id"] = tokenizer.eos_token_id
    ids = run.model.generate(batch["input_ids"], batch["attention_mask"], batch["task_ids"], **kwargs)
    results = []
    for text, item in zip(
        (t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)), items, strict=True
    ):
        result: dict[str, Any] = {"prediction": text}
        if item.task.is_classification:
            parsed = item.task.parse_prediction(text)
            result["label"] = item.task.label_words[parsed] if parsed != UNKNOWN_LABEL else None
        elif item.task.kind == "regression":
            result["value"] = _number(text)
        results.append(result)
    return results


def _number(text: str) -> float | None:
    try:
        return _finite(float(text))
    except ValueError:
        return None  # the model generated no number: say so rather than invent one


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity (Starlette refuses to encode them): a non-finite score is sent as null."""
    return value if math.isfinite(value) else None


def _scores(words: Sequence[str], values: torch.Tensor) -> dict[str, float | None]:
    return {word: _finite(value) for word, value in zip(words, values.tolist(), strict=True)}


def _add_attention(
    run: ServedRun, items: Sequence[Item], batch: dict[str, torch.Tensor], results: list[dict]
) -> None:
    names = run.attention_names()
    if names is None or not any(item.attention for item in items):
        return
    _, _, weights = run.model.prompted_inputs(batch["input_ids"], batch["attention_mask"], batch["task_ids"])
    for row, (item, result) in enumerate(zip(items, results, strict=True)):
        if item.attention:
            result["attention_weights"] = dict(zip(names, weights[row].float().tolist(), strict=True))


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
    """Predict inputs of one run folder (any of its tasks): per path (head, rank, generate), one pass per
    group of similar lengths (`length_groups`)."""
    results: list[dict[str, Any] | None] = [None] * len(items)
    encoder = run.model.family == "encoder"
    paths: dict[str, list[int]] = {"head": [], "rank": [], "generate": []}
    for position, item in enumerate(items):
        paths["head" if encoder else "rank" if run.uses_rank(item.task) else "generate"].append(position)
    score = {"head": _head_results, "rank": _rank_results, "generate": _generated_results}
    with torch.no_grad():
        for path, on_path in paths.items():
            for group in length_groups([items[p] for p in on_path], max_padding) if on_path else []:
                positions = [on_path[g] for g in group]
                chosen = [items[p] for p in positions]
                batch = _tensors(run, chosen, for_generation=not encoder)
                answered = score[path](run, chosen, batch)
                _add_attention(run, chosen, batch, answered)
                for position, result in zip(positions, answered, strict=True):
                    results[position] = {"task": items[position].task.name, "run": run.name, **result}
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
