"""Evaluation and batched prediction for trained ATTEMPT / prompt-tuning / fine-tuning models.

Each input is answered by `attempt.evaluation.inference`, the one inference path (`attempt serve` calls it too):
an encoder's head, rank classification (``method="rank"``: every label word scored after the input, the most
likely wins) or greedy generation (regression, extractive QA, ``method="generate"``; classification text is
mapped back with ``Task.parse_prediction`` for the metrics). This module batches the rows of each task, turns
the answers into prediction records, and computes the metrics.

`evaluate` scores validation/test rows per task; `predict` labels arbitrary inputs (mixed tasks allowed).
Reloading a finished run to evaluate is `attempt.runs.build.load_run`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from attempt.data.batching import longest_first
from attempt.data.collate import Collator, make_examples
from attempt.data.sources import check_fields
from attempt.evaluation import inference
from attempt.modeling.protocols import Predictor
from attempt.tasks import Task, get_task
from attempt.utils import storage
from attempt.utils.textfiles import DataError

PREDICTION_KEYS = ("task", "index", "idx", "source", "prediction", "reference")
# a token is rarely longer than this many characters: an input longer than max_source_length × this is refused
# before it is tokenized, so a huge text (a 1 MB line, a huge request body) never holds the tokenizer
CHARS_PER_TOKEN_BOUND = 32


class InputTooLong(DataError):
    """An input longer than a run reads (its max_source_length): the model would see only its beginning."""


# ----------------------------------------------------------------------------------- checking inputs
def check_input(
    row: Mapping[str, Any], task: Task, at: str, max_source_length: int, *, tokenizer: Any = None,
    family: str | None = None, fix: str | None = None,
) -> int | None:  # fmt: skip
    """Check one input as `predict` and `attempt serve` both take it, so that both refuse the same inputs with
    the same message: the task's fields present and text (`attempt.data.sources.check_fields`), and no longer
    than the run reads. A longer input is refused, not cut to its first `max_source_length` tokens: the
    prediction would be for another text, and nothing in the output would say so.

    Args:
        row: the input's fields (other keys, such as ``"task"``, are not looked at).
        task: its task.
        at: how errors name the input ("inputs.jsonl, line 3", "inputs[0]").
        max_source_length: the run's max_source_length, in tokens.
        tokenizer, family: the run's tokenizer and backbone family, to count the tokens exactly; without them
            only the quick bound (`CHARS_PER_TOKEN_BOUND` characters a token) is checked, before a model loads.
        fix: what a missing field's error suggests (default: give each input the task's fields).

    Returns:
        The input's source tokens, as the collator counts them before it truncates; None without `tokenizer`.

    Raises:
        DataError: a field missing or not text. InputTooLong: longer than `max_source_length` tokens.
    """
    check_fields(row, task, at, fix=fix or f"Give each input the task's fields ({', '.join(task.fields)}).")
    texts = [row[name] if isinstance(row[name], str) else "".join(row[name]) for name in task.fields]
    characters = sum(map(len, texts))
    if characters > max_source_length * CHARS_PER_TOKEN_BOUND:
        raise InputTooLong(
            f"{at} is far longer than the {max_source_length} tokens {task.name} reads ({characters:,} characters); "
            "shorten it or split it into several inputs."
        )
    if tokenizer is None:
        return None
    length = input_tokens(tokenizer, family, task, row)
    if length > max_source_length:
        raise InputTooLong(
            f"{at} is {length} tokens; the {task.name} run reads at most {max_source_length} (its "
            "max_source_length), so the rest would be cut. Shorten it or split it into several inputs."
        )
    return length


def input_tokens(tokenizer: Any, family: str | None, task: Task, row: Mapping[str, Any]) -> int:
    """An input's source tokens as `attempt.data.collate.Collator` counts them, before it truncates."""
    if family == "encoder":
        return len(tokenizer(*task.text_fields(row))["input_ids"])
    return len(tokenizer(task.source_text(row))["input_ids"])


# ------------------------------------------------------------------------------------------- helpers
def _reference(task: Task, row: Mapping[str, Any]) -> Any:
    """The gold answer in readable form: a label word, a score, or the list of answers (None if unlabelled)."""
    if row.get(task.label_field) is None:
        return None
    label = task.label_of(row)
    return task.label_words[label] if task.is_classification else label


# ------------------------------------------------------------------------------------- the core loop
def _predict_task(
    model: Predictor,
    tokenizer: Any,
    task: Task,
    examples: list[dict[str, Any]],
    *,
    method: str,
    batch_size: int,
    max_source_length: int,
    max_target_length: int,
    pad_to: int | None = None,
    sort_by_length: bool = True,
) -> list[dict[str, Any]]:
    """Predict every example of one task.

    Returns one record per example, in the order of `examples`: ``{"task", "index", "idx", "source",
    "prediction", "reference", "label" (the parsed prediction used for metrics), "attention_weights" (only
    with attention)}``.
    """
    inference.path_of(model, task, method)  # an unknown method, or QA on an encoder: refused before any batch
    collator = Collator(tokenizer, model.family, model.tasks, max_source_length, max_target_length, pad_to)
    # longest inputs first, so that each batch pads to rows of about its own length (and running out of memory
    # shows on the first batch); the records are put back in the order of `examples`
    order = list(range(len(examples)))
    if sort_by_length and pad_to is None:
        order = longest_first(order, [collator.source_length(e) for e in examples])
    records: list[dict[str, Any]] = [{} for _ in examples]
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        chunk = [examples[i] for i in positions]
        answers = inference.infer_batch(
            model, collator, chunk, method=method, max_new_tokens=max_target_length
        )
        for position, example, answer in zip(positions, chunk, answers, strict=True):
            records[position] = _record(task, example, answer.value, model.family)
            if answer.scores is not None:  # classification by a head or by rank: what `attempt serve` returns
                records[position]["scores"] = _label_scores(task, answer.scores)
            if answer.attention is not None:
                records[position]["attention_weights"] = answer.attention
    return records


def _record(task: Task, example: Mapping[str, Any], value: Any, family: str) -> dict[str, Any]:
    """The prediction record of one example; `value` is its parsed prediction (a label id, a score or text)."""
    row = example["row"]
    if isinstance(value, int) and task.is_classification:
        shown: Any = task.label_words[value]
    elif task.kind == "regression" and family == "encoder":
        shown = float(value)
    else:
        shown = value
    return {
        "task": task.name,
        "index": example["index"],
        "idx": row.get("idx") if isinstance(row, Mapping) else None,
        "source": task.source_text(row),
        "prediction": shown,
        "reference": _reference(task, row),
        "label": value,
    }


def _label_scores(task: Task, scores: Sequence[float]) -> dict[str, float | None]:
    """``{label word: score}``; JSON has no infinity, so a non-finite score is None (null), as serve sends it."""
    return {word: s if math.isfinite(s) else None for word, s in zip(task.label_words, scores, strict=True)}


def _mean_attention(records: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    rows = [r["attention_weights"] for r in records if "attention_weights" in r]
    if not rows:
        return None
    return {name: sum(w[name] for w in rows) / len(rows) for name in rows[0]}


def _write_records(path: str | Path, records: Sequence[Mapping[str, Any]]) -> None:
    lines = []
    for record in records:
        shown = {key: record[key] for key in PREDICTION_KEYS}
        if "attention_weights" in record:
            shown["attention_weights"] = record["attention_weights"]
        lines.append(json.dumps(shown, default=str))
    storage.write_text(path, "".join(line + "\n" for line in lines))


def _eval_mode(model: Predictor):
    """Context: eval mode and no gradients, restoring the previous training flag afterwards."""

    @contextlib.contextmanager
    def context():
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            model.train(was_training)

    return context()


def _shard_of(shard: tuple[int, int] | None, gather: Callable[[list], list] | None) -> tuple[int, int]:
    """Check and return ``(rank, world_size)`` (``(0, 1)`` without sharding)."""
    if shard is None:
        return 0, 1
    rank, world_size = shard
    if not (world_size >= 1 and 0 <= rank < world_size):
        raise ValueError(f"shard={shard!r} is not a valid (rank, world_size): needs 0 <= rank < world_size.")
    if world_size > 1 and gather is None:
        raise ValueError(
            f"shard={shard!r} predicts only this process's rows; pass gather= (e.g. accelerate.utils.gather_object) "
            "so the records of every process can be put together before the metrics."
        )
    return rank, world_size


def _merged_records(
    parts: Sequence[Sequence[dict[str, Any]]], task: Task, rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The records of one task from every process, back in row order (checked: each row exactly once)."""
    records = sorted((r for part in parts for r in part), key=lambda r: r["index"])
    if [r["index"] for r in records] != list(range(len(rows))):
        raise RuntimeError(
            f"Sharded evaluation of {task.name!r}: the gathered records do not cover its {len(rows)} rows exactly "
            "once; every process must evaluate the same rows with the same shard=(rank, world_size)."
        )
    return records


class Evaluation(dict):
    """What `evaluate` returns: the metrics dict ``{task: {metric: value, ..., "average": mean}, ...,
    "average": mean over tasks}``, that also carries the mean attention (not a dict key, so the metrics read,
    compare and serialise as a plain dict).

    Attributes:
        attention: ``{task: {prompt_name: mean weight}}`` over the evaluated examples; empty for models
            without attention.
    """

    def __init__(self, metrics: Any = (), attention: dict[str, dict[str, float]] | None = None):
        super().__init__(metrics)
        self.attention = attention or {}


def evaluate(
    model: Predictor,
    tokenizer: Any,
    task_rows: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    method: str = "rank",
    batch_size: int = 32,
    max_source_length: int = 256,
    max_target_length: int = 16,
    pad_to: int | None = None,
    sort_by_length: bool = True,
    predictions_path: str | Path | None = None,
    attention_path: str | Path | None = None,
    autocast: Callable[[], Any] | None = None,
    shard: tuple[int, int] | None = None,
    gather: Callable[[list[Any]], list[Any]] | None = None,
    lockstep: bool = False,
) -> Evaluation:
    """Score a model on labelled rows of one or more tasks.

    Args:
        model: an AttemptModel or a baseline with the same interface (`attempt.modeling.protocols.Predictor`).
        tokenizer: the backbone's tokenizer.
        task_rows: ``{task_name: rows}`` (raw rows with the Hub's field names and labels).
        method: "rank" (rank classification) or "generate" for LM backbones on classification tasks;
            regression and QA always generate; encoders always use the head.
        batch_size: examples per batch (rank classification scores batch_size × num_labels sequences).
        max_source_length, max_target_length: token limits (generation: max new tokens).
        pad_to: fixed padding length (None = dynamic).
        sort_by_length: batch the rows longest first (less padding; the records keep the rows' order);
            False batches them in file order.
        predictions_path: write one JSON line per example: ``task``, ``index`` (position in the rows),
            ``idx`` (the row's own id), ``source``, ``prediction``, ``reference`` and, for models with
            attention, ``attention_weights`` ``{source_name: w, ..., "target": w}``.
        attention_path: write ``{task: {prompt_name: mean weight}}`` over the evaluated examples.
        autocast: a callable returning a context manager to run the model in (mixed precision).
        shard: ``(rank, world_size)`` to share the work between processes: this call predicts only the rows
            ``i`` with ``i % world_size == rank`` of each task. None (default) or ``(0, 1)``: every row here.
        gather: with ``world_size > 1`` (required then): a collective called once, on every process, with a
            one-item list; it returns the concatenation of every process's list in process order, like
            ``accelerate.utils.gather_object``. The records are then put back in row order, and metrics, mean
            attention and the files are computed from all rows, identically on every process (pass the paths
            on one process only).
        lockstep: with `shard`, give every process as many rows of each task (those with one row fewer predict
            a copy of the task's first row, dropped before gathering), so all run the same number of forward and
            generate calls: needed when the model's forward is a collective (a sharded backbone).

    Returns:
        An `Evaluation`: the metrics dict ``{task: {metric: value, ..., "average": mean}, ..., "average":
        mean over tasks}``, with the mean attention per task as its ``.attention``.
    """
    rank, world_size = _shard_of(shard, gather)
    tasks = [get_task(name) for name in task_rows]
    local: list[list[dict[str, Any]]] = []  # this process's records, per task
    with _eval_mode(model), autocast() if autocast is not None else contextlib.nullcontext():
        for task, rows in zip(tasks, task_rows.values(), strict=True):
            every = make_examples(task, rows)
            examples = every[rank::world_size]  # rows i with i % world_size == rank
            filler = every[:1] * (-(-len(every) // world_size) - len(examples)) if lockstep else []
            records = _predict_task(
                model, tokenizer, task, examples + filler,
                method=method, batch_size=batch_size, max_source_length=max_source_length,
                max_target_length=max_target_length, pad_to=pad_to, sort_by_length=sort_by_length,
            )  # fmt: skip
            local.append(records[: len(examples)])  # the records keep the order of the examples
    per_task = _gathered(local, tasks, list(task_rows.values()), world_size, gather)
    result = _scored(tasks, list(task_rows.values()), per_task)
    if predictions_path is not None:
        _write_records(predictions_path, [record for records in per_task for record in records])
    if attention_path is not None and result.attention:
        storage.write_json(attention_path, result.attention)
    return result


def _gathered(
    local: list[list[dict[str, Any]]], tasks: list[Task], task_rows: list[Sequence[Mapping[str, Any]]],
    world_size: int, gather: Callable[[list[Any]], list[Any]] | None,
) -> list[list[dict[str, Any]]]:  # fmt: skip
    """Every task's records from all processes, in row order (this process's own without sharding)."""
    if world_size == 1:
        return local
    assert gather is not None  # checked by _shard_of
    processes = gather([local])  # one item per process, in process order: [[records of task 0, ...], ...]
    return [
        _merged_records([part[i] for part in processes], task, rows)
        for i, (task, rows) in enumerate(zip(tasks, task_rows, strict=True))
    ]


def _scored(
    tasks: list[Task], task_rows: list[Sequence[Mapping[str, Any]]], per_task: list[list[dict[str, Any]]]
) -> Evaluation:
    """The metrics of every task and their average over tasks, and each task's mean attention."""
    metrics: dict[str, Any] = {}
    attention: dict[str, dict[str, float]] = {}
    for task, rows, records in zip(tasks, task_rows, per_task, strict=True):
        metrics[task.name] = task.compute_metrics([r["label"] for r in records], list(rows))
        mean = _mean_attention(records)
        if mean is not None:
            attention[task.name] = mean
    averages = [m["average"] for m in metrics.values()]
    metrics["average"] = sum(averages) / len(averages) if averages else float("nan")
    return Evaluation(metrics, attention)


def predict(
    model: Predictor,
    tokenizer: Any,
    inputs: Sequence[Mapping[str, Any]],
    *,
    method: str = "rank",
    batch_size: int = 32,
    max_source_length: int = 256,
    max_target_length: int = 16,
) -> list[dict[str, Any]]:
    """Predict labels for inputs of one or several tasks (labels optional).

    Args:
        inputs: dicts ``{"task": name, **row_fields}`` (e.g. the lines of a JSONL file); each task must be one
            of the model's tasks.
        method, batch_size, max_source_length, max_target_length: as in `evaluate`.

    Returns:
        One dict per input, in input order: ``task``, ``index`` (0-based position in `inputs`), ``idx``,
        ``source``, ``prediction``, ``reference`` (None when the input has no label), ``scores`` (classification:
        ``{label word: score}``, each label word's log-likelihood by rank or the head's log-softmax, as
        `attempt serve` returns them) and ``attention_weights`` when the model has attention.

    Raises:
        ValueError: an input without a known task of the model, or whose fields are missing or not text, or
            (`InputTooLong`) longer than `max_source_length` tokens, as `attempt serve` refuses it (`check_input`);
            the message counts inputs from 1 (the line of a JSON-lines file without blank lines).
    """
    by_task: dict[str, list[dict[str, Any]]] = {}
    for position, item in enumerate(inputs):
        at = f"Input {position + 1} (counted from 1, like the lines of a file)"  # `index` below is 0-based
        if "task" not in item:
            raise ValueError(f"{at} has no 'task' field; every input needs one, e.g. {{'task': 'rte', ...}}.")
        task = get_task(item["task"])
        if task.name not in model.tasks:
            raise ValueError(f"{at}: task {task.name!r} is not one of the model's tasks {list(model.tasks)}.")
        # present, text (a null or a number is refused, not formatted) and not longer than the run reads
        check_input(item, task, at, max_source_length, tokenizer=tokenizer, family=model.family)
        row = {key: value for key, value in item.items() if key != "task"}
        by_task.setdefault(task.name, []).append({"task": task.name, "row": row, "index": position})
    results: list[dict[str, Any] | None] = [None] * len(inputs)
    with _eval_mode(model):
        for name, examples in by_task.items():
            records = _predict_task(
                model, tokenizer, get_task(name), examples, method=method, batch_size=batch_size,
                max_source_length=max_source_length, max_target_length=max_target_length,
            )  # fmt: skip
            for record in records:
                record.pop("label")
                results[record["index"]] = record
    return [r for r in results if r is not None]
