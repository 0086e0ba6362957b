"""Your inputs as a run reads them, and `predict_texts`: a trained run's answers for raw texts in one call.

    import attempt
    attempt.predict_texts("runs/reviews", ["this blender is wonderful", "it broke in a week"])
    # [{"task": "product_reviews", "prediction": "positive", "scores": {"negative": -2.9, "positive": -0.4},
    #   "attention_weights": {...}, ...}, ...]

`as_input` completes one input as `attempt predict` reads a line of its file: its task (its own ``"task"``, else
the one named, else the run's only task), your column names mapped to the task's fields, a bare text put in
the task's one input field, and a label it may carry read as the run read its training files (its ``--labels``). `predict_texts` then calls `attempt.evaluation.evaluate.predict`, the one inference
path that `attempt predict` and `attempt serve` take too, so all three give the same prediction and scores.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from attempt.data.sources import check_fields, read_label
from attempt.evaluation.evaluate import predict
from attempt.tasks import get_task

FIELDS_FIX = "Give each input the task's fields, or map the keys you have onto them (columns=, --columns)."


def as_input(
    item: str | Mapping[str, Any],
    tasks: Sequence[str],
    task: str | None = None,
    columns: Mapping[str, Mapping[str, str]] | None = None,
    at: str = "input",
    labels: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """One input in the form `predict` takes: ``{"task": name, field: text, ...}``.

    Args:
        item: a text (for a task with one input field) or ``{field or your column: text, ...}``, with or without
            ``"task"``.
        tasks: the run's tasks: an input without a task is the only one's.
        task: the task of inputs that name none (``--task``).
        columns: ``{task: {your column: the task's field}}`` (``--columns``).
        at: how errors name the input (the file and line).
        labels: ``{task: {your value: label}}``, the label maps of the run (`TrainConfig.data_files`).

    Raises:
        ValueError: no task to be had, a bare text for a task of several fields, an input that is neither, a
            label the task does not have (DataError).
        attempt.tasks.UnknownTaskError: a task that is not registered (the message lists the known ones).
    """
    named = item.get("task") if isinstance(item, Mapping) else None
    name = named or task or (tasks[0] if len(tasks) == 1 else None)
    if name is None:
        raise ValueError(f'{at}: no "task" field, and the run has tasks {", ".join(tasks) or "(none read)"}: '
                         'add "task" to each input or name the task (--task, task=).')  # fmt: skip
    chosen = get_task(name)
    if isinstance(item, str):
        if len(chosen.fields) != 1:
            raise ValueError(f"{at}: task {chosen.name!r} reads {len(chosen.fields)} fields ({', '.join(chosen.fields)}), "
                             f"so one text cannot fill them; give {{{', '.join(map(repr, chosen.fields))}}} instead.")  # fmt: skip
        return {"task": chosen.name, chosen.fields[0]: item}
    if not isinstance(item, Mapping):
        raise ValueError(
            f"{at}: an input is a text or a mapping of fields to texts, not {type(item).__name__}."
        )
    renames = (columns or {}).get(chosen.name) or {}
    row = {"task": chosen.name, **{renames.get(k, k): v for k, v in item.items() if k != "task"}}
    if row.get(chosen.label_field) is not None:  # a reference to score against, as the run spelled its labels
        row[chosen.label_field] = read_label(
            row[chosen.label_field], chosen, at, (labels or {}).get(chosen.name)
        )
    return row


def run_label_maps(config: Any) -> dict[str, dict[str, str]]:
    """``{task: {your value: label}}``: the ``--labels`` a run was trained with (`TrainConfig.data_files`)."""
    return {task: spec["labels"] for task, spec in (config.data_files or {}).items() if spec.get("labels")}


def predict_texts(
    run: str | os.PathLike | tuple[Any, Any, Any],
    inputs: Sequence[str | Mapping[str, Any]],
    *,
    task: str | None = None,
    columns: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    batch_size: int | None = None,
) -> list[dict[str, Any]]:
    """A trained run's predictions for your texts: what `attempt predict` writes, one dict per input.

    Args:
        run: a run folder (`attempt train`'s output_dir, moved or not: its own tasks come with it), or the
            ``(model, tokenizer, config)`` that `attempt.runs.build.load_run` returned, to predict many times
            while loading the backbone once.
        inputs: texts (tasks with one input field) or ``{field: text, ...}`` mappings, ``"task"`` optional.
        task: the task of the inputs that name none; needed when the run has several tasks.
        columns: ``{your key: the task's field}`` for inputs whose keys are named otherwise.
        labels: ``{your value: label}`` for inputs that carry a label spelled otherwise (the run's own
            ``--labels`` apply too); it is kept as the prediction's ``reference``.
        batch_size: inputs per batch (default: the run's eval_batch_size).

    Returns:
        One dict per input, in order: ``task``, ``index``, ``source``, ``prediction`` (the label word, value or
        text), ``scores`` (classification: ``{label word: score}``), ``reference`` (when the input has a label)
        and ``attention_weights`` (ATTEMPT runs) — the same as `attempt predict` and `attempt serve`.

    Raises:
        FileNotFoundError: `run` is not a finished run folder.
        ValueError: an input as `as_input` refuses it, or a task that is not one of the run's.
    """
    from attempt.runs.build import load_run, read_run_config

    if isinstance(run, (str, os.PathLike)):
        config = read_run_config(run)
        config.register_tasks()  # the run's own tasks, so that the inputs can name them
        tasks = [get_task(name).name for name in config.tasks]
    else:
        tasks, config = list(run[0].tasks), run[2]
    renames = {name: dict(columns or {}) for name in tasks}
    maps = run_label_maps(config)
    maps = {name: {**maps.get(name, {}), **dict(labels or {})} for name in tasks}
    rows = []
    for position, item in enumerate(inputs, start=1):  # every input checked before the backbone loads
        row = as_input(item, tasks, task, renames, f"Input {position} (counted from 1)", maps)
        fields = {key: value for key, value in row.items() if key != "task"}  # as the input has them
        check_fields(fields, get_task(row["task"]), f"Input {position} (counted from 1)", fix=FIELDS_FIX)
        rows.append(row)
    model, tokenizer, config = load_run(run, config=config) if isinstance(run, (str, os.PathLike)) else run
    return predict(
        model, tokenizer, rows, method=config.eval_method, batch_size=batch_size or config.eval_batch_size,
        max_source_length=config.max_source_length, max_target_length=config.max_target_length,
    )  # fmt: skip


__all__ = ["FIELDS_FIX", "as_input", "predict_texts", "run_label_maps"]
