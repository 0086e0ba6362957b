"""The paper's split protocol, few-shot sampling, multi-task mixing and length-grouped batching.

Everything here is deterministic given a seed (NumPy ``default_rng``).

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

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from attempt.data import DataError, load_split
from attempt.tasks import Task, get_task

HELD_OUT_VALIDATION = 1_000


def paper_splits(
    task: Task | str,
    data_dir: str | os.PathLike | None = None,
    seed: int = 42,
    official_validation: str | None = None,
    official_train: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Build the train / validation / test rows of the paper's protocol.

    Args:
        task: a `Task` or its name.
        data_dir: a local mirror (see `attempt.data.load_split`); None means ``$ATTEMPT_DATA_DIR`` or the Hub.
        seed: seed of the shuffles.
        official_validation: the split to use as the official validation set instead of
            `Task.validation_split` (e.g. the mirror's ``"validation_bimpm_proxy"`` for QQP).
        official_train: the split to use as the official train set instead of `Task.train_split`.

    Returns:
        ``{"train": rows, "validation": rows, "test": rows}``.

    Raises:
        MissingSplitError / DataError: from `load_split`; DataError when a large task has no more than
        1,000 training rows to hold out.
    """
    task = get_task(task)
    validation_name = official_validation or task.validation_split
    train = load_split(task, official_train or task.train_split, data_dir)
    official = load_split(task, validation_name, data_dir)
    if task.test_split is not None:
        return {"train": train, "validation": official, "test": load_split(task, task.test_split, data_dir)}
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


def mixing_rates(sizes: Sequence[int], cap: int | None = None, temperature: float = 1.0) -> np.ndarray:
    """Multi-task sampling rates: ``r_i ∝ min(n_i, cap) ** (1 / temperature)``.

    Args:
        sizes: examples per task.
        cap: per-task cap (None = no cap): examples-proportional mixing with an artificial limit (T5).
        temperature: 1 = examples-proportional; larger values flatten towards uniform.

    Returns:
        (num_tasks,) rates summing to 1.

    Raises:
        ValueError: no tasks, an empty task, a non-positive cap or temperature.
    """
    if not sizes or min(sizes) < 1:
        raise ValueError(f"Every task needs at least one example; sizes = {list(sizes)}.")
    if (cap is not None and cap < 1) or temperature <= 0:
        raise ValueError(f"cap must be >= 1 and temperature > 0; got cap={cap}, temperature={temperature}.")
    capped = np.array([min(n, cap) if cap is not None else n for n in sizes], dtype=float)
    weights = capped ** (1.0 / temperature)
    return weights / weights.sum()


class MixtureSampler:
    """Yield ``(task_index, example_index)`` pairs for multi-task training, deterministically from a seed.

    At each step a task is drawn with `mixing_rates`; its examples are visited in a fresh random order per
    pass, so every example of a task is seen before any repeats. Group consecutive pairs into batches to get
    mixed-task batches.

    Args:
        sizes: examples per task, in the model's task order.
        num_samples: pairs per iteration; None means ``sum(min(n_i, cap))`` (one capped "epoch").
        cap: per-task cap of examples-proportional mixing (None = no cap).
        temperature: temperature of the mixing (1 = examples-proportional).
        seed: seed; call `set_epoch` to get a different but reproducible order per epoch.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        num_samples: int | None = None,
        cap: int | None = None,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.sizes = list(sizes)
        self.rates = mixing_rates(self.sizes, cap, temperature)
        self.num_samples = num_samples or sum(min(n, cap) if cap else n for n in self.sizes)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch, which changes (reproducibly) the order of the next iteration."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        tasks = rng.choice(len(self.sizes), size=self.num_samples, p=self.rates)
        orders = [rng.permutation(n) for n in self.sizes]
        cursors = [0] * len(self.sizes)
        for task_index in tasks.tolist():
            if cursors[task_index] == self.sizes[task_index]:
                orders[task_index] = rng.permutation(self.sizes[task_index])
                cursors[task_index] = 0
            yield task_index, int(orders[task_index][cursors[task_index]])
            cursors[task_index] += 1


class LengthGroupedBatchSampler:
    """Batches of indices of similar length, in a shuffled, seed-determined order.

    Indices are shuffled, cut into mega-batches of ``batch_size * group_factor``, sorted by length (longest
    first) inside each, cut into batches, and the batches shuffled. Usable as ``DataLoader(batch_sampler=)``.

    Args:
        lengths: length of every example (e.g. `Collator.source_length`).
        batch_size: examples per batch.
        seed: shuffling seed; `set_epoch` varies it reproducibly.
        group_factor: mega-batch size in batches (larger = tighter length grouping, less randomness).
        drop_last: drop a last incomplete batch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        group_factor: int = 50,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1 or group_factor < 1:
            raise ValueError(f"batch_size and group_factor must be >= 1; got {batch_size}, {group_factor}.")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_factor = group_factor
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch, which changes (reproducibly) the order of the next iteration."""
        self.epoch = epoch

    def __len__(self) -> int:
        count = len(self.lengths) / self.batch_size
        return math.floor(count) if self.drop_last else math.ceil(count)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        mega = self.batch_size * self.group_factor
        batches: list[list[int]] = []
        for start in range(0, len(order), mega):
            group = order[start : start + mega]
            group = group[np.argsort(-self.lengths[group], kind="stable")]
            batches.extend(group[i : i + self.batch_size].tolist() for i in range(0, len(group), self.batch_size))
        if self.drop_last:
            batches = [batch for batch in batches if len(batch) == self.batch_size]
        for position in rng.permutation(len(batches)):
            yield batches[position]
