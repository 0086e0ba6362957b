"""The rows a run trains and evaluates on: the paper's split protocol, few-shot sampling and the run's limits.

`load_task_data` applies all three to the tasks of a `TrainConfig`. Everything here is deterministic given a
seed (NumPy ``default_rng``); turning the training rows into batches is `attempt.data.batching`.

Split protocol (`paper_splits`), decided by `Task.is_small` (from the official train size, not the size of a
subsampled mirror):

- small tasks (< 10K official training examples, plus MultiRC and SciTail as in the paper): the official
  validation set is shuffled with the seed and halved: first ``n // 2`` rows → validation, the rest → test
  (MultiRC: its questions are halved, keeping the answer rows of a question together); train is the full
  official train;
- large tasks: 1,000 training rows chosen with the seed are held out as validation (the remaining train keeps
  its file order); the official validation set is the test set;
- tasks with a `Task.test_split` (MNLI): validation_mismatched is the validation set, validation_matched the
  test set, train is the full train.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from attempt.config import TrainConfig
from attempt.data.sources import DataError, load_split, load_user_file
from attempt.tasks import Task, get_task
from attempt.tasks.data_files import SPLITS

HELD_OUT_VALIDATION = 1_000


def paper_splits(
    task: Task | str,
    data_dir: str | os.PathLike | None = None,
    seed: int = 42,
    official_validation: str | None = None,
    official_train: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Build the train / validation / test rows of the paper's protocol.

    Args:
        task: a `Task` or its name.
        data_dir: a local mirror (see `attempt.data.sources.load_split`); None means ``$ATTEMPT_DATA_DIR`` or the Hub.
        seed: seed of the shuffles.
        official_validation: the split to use as the official validation set instead of
            `Task.validation_split` (e.g. the mirror's ``"validation_bimpm_proxy"`` for QQP).
        official_train: the split to use as the official train set instead of `Task.train_split`.
        labels: ``{your value: label}`` for a task file's own files (`attempt.data.sources.load_user_file`).

    Returns:
        ``{"train": rows, "validation": rows, "test": rows}``.

    Raises:
        MissingSplitError / DataError: from `load_split`; DataError when a large task has no more than
        1,000 training rows to hold out.
    """
    task = get_task(task)
    validation_name = official_validation or task.validation_split
    train = load_split(task, official_train or task.train_split, data_dir, labels)
    official = load_split(task, validation_name, data_dir, labels)
    if task.test_split is not None:
        test = load_split(task, task.test_split, data_dir, labels)
        return {"train": train, "validation": official, "test": test}
    rng = np.random.default_rng(seed)
    if task.is_small:
        validation, test = _halve(official, task, rng)
        return {"train": train, "validation": validation, "test": test}
    if len(train) <= HELD_OUT_VALIDATION:
        raise DataError(
            f"Task {task.name!r}: only {len(train)} training rows; the large-task protocol holds out "
            f"{HELD_OUT_VALIDATION} of them as validation."
        )
    held_out = np.sort(rng.permutation(len(train))[:HELD_OUT_VALIDATION])
    held = set(held_out.tolist())
    return {
        "train": [row for i, row in enumerate(train) if i not in held],
        "validation": [train[i] for i in held_out],
        "test": official,
    }


def paper_validation(
    task: Task | str, data_dir: str | os.PathLike | None = None, seed: int = 42
) -> list[dict[str, Any]]:
    """The validation rows of `paper_splits` alone: the same rows for the same seed, without reading the
    training split where the protocol does not need it (a small task's, or one with a `Task.test_split`), so
    a mirror that has only the validation file will do."""
    task = get_task(task)
    if task.test_split is None and task.is_small:
        official = load_split(task, task.validation_split, data_dir)
        return _halve(official, task, np.random.default_rng(seed))[0]
    if task.test_split is not None:
        return load_split(task, task.validation_split, data_dir)
    return paper_splits(task, data_dir, seed=seed)["validation"]


def _halve(
    rows: Sequence[dict[str, Any]], task: Task, rng: np.random.Generator
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shuffle and halve rows; rows of one question (MultiRC) stay together, halving the questions."""
    groups: dict[Any, list[int]] = {}
    for position, row in enumerate(rows):
        key = task.group_of(row)
        groups.setdefault(position if key is None else ("group", key), []).append(position)
    units = list(groups.values())
    order = rng.permutation(len(units))
    half = len(units) // 2
    validation = [rows[i] for unit in order[:half] for i in units[unit]]
    test = [rows[i] for unit in order[half:] for i in units[unit]]
    return validation, test


def few_shot(
    rows: Sequence[Mapping[str, Any]], task: Task | str, k: int, seed: int = 42, allow_fewer: bool = False
) -> list[Mapping[str, Any]]:
    """Sample a k-shot training set.

    Classification / multiple choice: k rows of every label, drawn without replacement. Regression and QA
    have no classes: ``2 * k`` rows drawn at random (the size of a binary k-shot set).

    Args:
        rows: the pool (e.g. the train split).
        task: the task (gives the labels).
        k: examples per class (the paper uses 4, 16, 32).
        seed: sampling seed; the same seed gives the same rows in the same order.
        allow_fewer: a label with fewer than k rows in the pool gives all of them (e.g. CB's 16 "neutral"
            training rows at k = 32) instead of failing.

    Returns:
        The sampled rows, shuffled.

    Raises:
        ValueError: k < 1, or a label with fewer than k rows in the pool (the message names it).
    """
    task = get_task(task)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    rng = np.random.default_rng(seed)
    if not task.is_classification:
        if len(rows) < 2 * k:
            raise ValueError(f"Task {task.name!r}: {len(rows)} rows, fewer than the 2*k={2 * k} asked for.")
        return [rows[i] for i in rng.permutation(len(rows))[: 2 * k]]
    by_label: dict[int, list[int]] = {label: [] for label in range(task.num_labels)}
    for position, row in enumerate(rows):
        by_label[task.label_of(row)].append(position)
    chosen: list[int] = []
    for label, positions in by_label.items():
        if len(positions) < k and not allow_fewer:
            raise ValueError(
                f"Task {task.name!r}: label {task.label_words[label]!r} (id {label}) has {len(positions)} "
                f"rows, fewer than k={k}. Use a smaller k or a larger pool."
            )
        chosen.extend(rng.choice(positions, size=min(k, len(positions)), replace=False).tolist())
    return [rows[i] for i in rng.permutation(chosen)]


def load_task_data(config: TrainConfig) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{task: {"train", "validation", "test": rows}}`` with the paper's splits, k-shot and limits applied."""
    data = {}
    for name in config.tasks:
        task = get_task(name)
        splits = read_own_splits(
            task.name, config.data_files
        )  # your files replace those splits of the protocol
        if len(splits) < len(SPLITS):
            labels = ((config.data_files or {}).get(task.name) or {}).get("labels")
            splits = {
                **paper_splits(task, config.data_dir, seed=_split_seed(config), labels=labels),
                **splits,
            }
        train_rows = list(splits["train"])
        if config.k_shot is not None:
            train_rows = list(
                few_shot(
                    train_rows, task, config.k_shot, seed=config.seed, allow_fewer=config.k_shot_allow_fewer
                )
            )
        if config.train_limit is not None:
            train_rows = train_rows[: config.train_limit]
        limits = {
            "validation": config.eval_limit,
            "test": config.eval_limit if config.test_limit is None else config.test_limit,
        }
        evaluation = {s: list(splits[s])[: limits[s]] if limits[s] else list(splits[s]) for s in limits}
        data[task.name] = {"train": train_rows, **evaluation}
    return data


def _split_seed(config: TrainConfig) -> int:
    return config.seed if config.split_seed is None else config.split_seed


def evaluation_rows(config: TrainConfig, task: str, split: str) -> list[dict[str, Any]]:
    """The rows of one evaluation split ("validation" or "test") of one task, as `load_task_data` gives them,
    reading only what that split needs: your file of that split, else the protocol's source of it (a small
    task's test half needs its official validation rows, not its training rows), so a run moved away from its
    training data still scores the splits it can reach.

    Raises:
        FileNotFoundError (MissingSplitError), ImportError, DataError: from the files, the mirror or the Hub.
    """
    spec = (config.data_files or {}).get(task) or {}
    limit = config.eval_limit if split == "validation" or config.test_limit is None else config.test_limit
    if split in spec:
        rows = load_user_file(spec[split], task, spec.get("columns"), spec.get("labels"))
    else:
        rows = _protocol_split(
            get_task(task), split, config.data_dir, _split_seed(config), spec.get("labels")
        )
    return rows[:limit] if limit else rows


def _protocol_split(
    task: Task, split: str, data_dir: Any, seed: int, labels: Mapping[str, str] | None
) -> list[dict[str, Any]]:
    """One evaluation split of `paper_splits`: the same rows for the same seed, read from only the splits it
    is made of (a large task's validation rows are held out of its training rows, so those are read then)."""
    if task.test_split is not None:
        return load_split(
            task, task.validation_split if split == "validation" else task.test_split, data_dir, labels
        )
    if task.is_small:
        official = load_split(task, task.validation_split, data_dir, labels)
        return _halve(official, task, np.random.default_rng(seed))[split == "test"]
    if split == "test":
        return load_split(task, task.validation_split, data_dir, labels)
    return paper_splits(task, data_dir, seed=seed, labels=labels)["validation"]


def read_own_splits(task: str, data_files: Mapping[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """``{split: rows}`` of the task's own files (none: ``{}``), columns renamed, labels mapped and rows
    validated.

    Raises:
        FileNotFoundError / DataError: from `attempt.data.sources.load_user_file` (naming the file and line).
    """
    spec = (data_files or {}).get(task)
    if not spec:
        return {}
    return {
        split: load_user_file(spec[split], task, spec.get("columns"), spec.get("labels"))
        for split in SPLITS
        if split in spec
    }
