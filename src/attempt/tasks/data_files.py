"""The form of `TrainConfig.data_files`: which split of a built-in task comes from which of your files.

A registered task (rte, sst2, ...) keeps its fields, label words and metrics, but any of its splits can come
from your CSV / TSV / JSON-lines file, with a map from your column names to the task's fields::

    data_files:
      rte:
        train: my_rte_train.csv
        columns: {premise: sentence1, hypothesis: sentence2}   # your column -> the task's field
        labels: {entails: entailment, neutral: not_entailment}  # your label value -> the task's label word

Each file replaces that split of the paper's protocol (`attempt.data.splits.paper_splits`); the splits without a
file still come from the mirror or the Hub (here: validation and test are the halves of RTE's official
validation set). k_shot and the limits then apply as usual. On the command line: ``attempt train --tasks rte
--train-file my_rte_train.csv --columns premise=sentence1 --columns hypothesis=sentence2 --labels
entails=entailment neutral=not_entailment``. ``labels`` alone (no split) maps the labels of a task file's own
files (`attempt.tasks.user`).

A task with a new label set or new inputs is a new task: write a task file (`attempt.tasks.user`) instead.
The files are read by `attempt.data.splits.read_own_splits`; this module only checks and converts the form.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attempt.utils.textfiles import ROW_FILE_KINDS, ROW_FILE_SUFFIXES

SPLITS = ("train", "validation", "test")
KEYS = (*SPLITS, "columns", "labels")
EXAMPLE = "data_files: {rte: {train: my_train.csv, columns: {premise: sentence1}}}"


def normalize_data_files(value: Any, tasks: Sequence[str]) -> dict[str, dict[str, Any]] | None:
    """Check `TrainConfig.data_files` and give it one form: ``{task: {split: path, "columns": {col: field}}}``,
    plus ``"labels": {value: label}`` when it maps labels.

    Raises:
        ValueError: not a mapping of the run's tasks, an unknown split key, a path with a suffix that is not
            read, a columns entry that is not ``{column: field}``, a labels entry that is not ``{value: label}``;
            the message shows the expected form.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"data_files maps task names to their files, e.g. {EXAMPLE}; got {value!r}.")
    normalized = {}
    for task, spec in value.items():
        if task not in tasks:
            raise ValueError(
                f"data_files names task {task!r}, which is not one of the run's tasks {list(tasks)}."
            )
        if not isinstance(spec, Mapping) or not set(spec) & {*SPLITS, "labels"}:
            raise ValueError(f"data_files[{task!r}] maps splits ({', '.join(SPLITS)}) to files, e.g. {EXAMPLE}; "
                             f"got {spec!r}.")  # fmt: skip
        unknown = sorted(str(key) for key in spec if key not in KEYS)
        if unknown:
            raise ValueError(
                f"data_files[{task!r}]: unknown key(s) {', '.join(unknown)}; valid: {', '.join(KEYS)}."
            )
        entry: dict[str, Any] = {}
        for split in SPLITS:
            if spec.get(split) is not None:
                entry[split] = _path(spec[split], f"data_files[{task!r}].{split}")
        entry["columns"] = _columns(spec.get("columns") or {}, task)
        labels = _labels(spec["labels"], task) if spec.get("labels") is not None else {}
        if labels:  # recorded only when given, so the runs saved before labels existed read the same
            entry["labels"] = labels
        normalized[task] = entry
    return normalized


def _path(value: Any, key: str) -> str:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"{key} must be a file path, got {value!r}.")
    if Path(value).suffix.lower() not in ROW_FILE_SUFFIXES:
        raise ValueError(
            f"{key} {str(value)!r} must end in {', '.join(ROW_FILE_SUFFIXES)} ({ROW_FILE_KINDS})."
        )
    return str(value)


def _columns(value: Any, task: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"data_files[{task!r}].columns maps your column names to the task's fields, e.g. "
                         f"{{premise: sentence1}}; got {value!r}.")  # fmt: skip
    return dict(value)


def _labels(value: Any, task: str) -> dict[str, str]:
    """``{value: label}`` with both as text: a YAML recipe reads ``1: positive`` with a number for a key."""
    if not isinstance(value, Mapping) or not all(
        isinstance(item, (str, int)) and not isinstance(item, bool) for pair in value.items() for item in pair
    ):
        raise ValueError(f"data_files[{task!r}].labels maps the label values of your files to the task's labels, "
                         f"e.g. {{entails: entailment, neutral: not_entailment}}; got {value!r}.")  # fmt: skip
    return {str(key).strip(): str(label).strip() for key, label in value.items()}


def with_paths(data_files: dict[str, Any] | None, convert: Callable[[str], str]) -> dict[str, Any] | None:
    """`data_files` with `convert` applied to every path (`attempt.runs.portable`: relative to the run and back)."""
    if not data_files or not isinstance(data_files, dict):  # not a mapping: normalize_data_files says so
        return data_files
    return {
        task: {
            key: convert(value) if key in SPLITS and isinstance(value, str) else value
            for key, value in spec.items()
        }
        if isinstance(spec, dict)
        else spec
        for task, spec in data_files.items()
    }


__all__ = ["KEYS", "SPLITS", "normalize_data_files", "with_paths"]
