"""From a run's training rows to its batches: multi-task mixing, length grouping and a deterministic stream.

`MixtureSampler` draws ``(task, example)`` pairs with examples-proportional mixing (capped and tempered);
`LengthGroupedBatchSampler` cuts one task's examples into batches of similar length; `longest_first` is the
length grouping both they and evaluation use. `BatchStream` turns the training examples of a run into global
batches whose order depends only on (seed, epoch, number of processes), so a resumed run consumes exactly the
batches the interrupted run would have, and hands each process its slice. Everything here is deterministic
given a seed (NumPy ``default_rng``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from attempt.config import TrainConfig
from attempt.data.collate import Collator

GROUP_FACTOR = 50  # length grouping: mega-batches of this many batches are sorted by length


def longest_first(order: Sequence[int], lengths: Sequence[int], group_size: int | None = None) -> list[int]:
    """`order` cut into consecutive groups of `group_size` (None: one group), each sorted longest first.

    The sort is stable: indices of equal length keep their order in `order`. `lengths[i]` is the length of
    index ``i``.
    """
    order, lengths = np.asarray(order, dtype=np.int64), np.asarray(lengths)
    size = group_size or max(len(order), 1)
    grouped: list[int] = []
    for start in range(0, len(order), size):
        group = order[start : start + size]
        grouped.extend(group[np.argsort(-lengths[group], kind="stable")].tolist())
    return grouped


def _cut(items: Sequence, size: int) -> list[list]:
    """Consecutive chunks of `size` items (the last one may be shorter)."""
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


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
        # a mega-batch is a whole number of batches, so cutting the grouped order cuts every mega-batch
        grouped = longest_first(order, self.lengths, self.batch_size * self.group_factor)
        batches = _cut(grouped, self.batch_size)
        if self.drop_last:
            batches = [batch for batch in batches if len(batch) == self.batch_size]
        for position in rng.permutation(len(batches)):
            yield batches[position]


class BatchStream:
    """Deterministic training batches: the order of epoch e depends only on (seed, e, number of processes).

    One task: a shuffled (optionally length-grouped) pass over the examples. Several tasks: an epoch of
    `MixtureSampler` draws (examples-proportional mixing, capped and tempered), cut into mixed-task batches
    (length-grouped inside mega-batches when asked). Each global batch of ``batch_size × processes`` examples
    is split into contiguous per-process slices.
    """

    def __init__(
        self, examples: dict[str, list[dict]], collator: Collator, config: TrainConfig, rank: int, world: int
    ):
        self.tasks = list(examples)
        self.examples = examples
        self.config = config
        self.rank, self.world = rank, world
        self.global_batch = config.batch_size * world
        self.lengths = (
            {t: [collator.source_length(e) for e in rows] for t, rows in examples.items()}
            if config.group_by_length
            else None
        )
        self._cache: tuple[int, list[list[dict]]] | None = None

    def epoch_batches(self, epoch: int) -> list[list[dict]]:
        """The global batches of epoch `epoch` (the last epoch asked for is cached)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        batches = self._one_task(epoch) if len(self.tasks) == 1 else self._mixed(epoch)
        batches = [b for b in batches if len(b) >= self.world]  # every process needs at least one example
        if not batches:
            raise ValueError(f"Not enough training examples for {self.world} processes.")
        self._cache = (epoch, batches)
        return batches

    def _one_task(self, epoch: int) -> list[list[dict]]:
        task, seed = self.tasks[0], self.config.seed
        rows = self.examples[task]
        if self.lengths is None:
            order = np.random.default_rng([seed, epoch]).permutation(len(rows))
            return [[rows[i] for i in batch] for batch in _cut(order, self.global_batch)]
        sampler = LengthGroupedBatchSampler(
            self.lengths[task], self.global_batch, seed=seed, group_factor=GROUP_FACTOR
        )
        sampler.set_epoch(epoch)
        return [[rows[i] for i in batch] for batch in sampler]

    def _mixed(self, epoch: int) -> list[list[dict]]:
        seed = self.config.seed
        sizes = [len(self.examples[t]) for t in self.tasks]
        sampler = MixtureSampler(
            sizes, cap=self.config.mixing_cap, temperature=self.config.mixing_temperature, seed=seed
        )
        sampler.set_epoch(epoch)
        drawn = [(self.tasks[t], i) for t, i in sampler]
        if self.lengths is not None:
            lengths = [self.lengths[t][i] for t, i in drawn]
            drawn = [
                drawn[j] for j in longest_first(range(len(drawn)), lengths, self.global_batch * GROUP_FACTOR)
            ]
        batches = [[self.examples[t][i] for t, i in batch] for batch in _cut(drawn, self.global_batch)]
        if self.lengths is not None:  # the mega-batches were sorted longest first: shuffle the batches again
            order = np.random.default_rng([seed, epoch, 1]).permutation(len(batches))
            batches = [batches[i] for i in order]
        return batches

    def next_local(self, epoch: int, batch_index: int) -> tuple[list[dict], int, int]:
        """This process's slice of the global batch at (epoch, batch_index), and the position after it.

        Returns:
            ``(examples, epoch, batch_index)``: the position of the next batch (the next epoch's first batch
            when this one was the last); the training loop keeps it in its state and checkpoints.
        """
        batches = self.epoch_batches(epoch)
        if batch_index >= len(batches):
            epoch, batch_index = epoch + 1, 0
            batches = self.epoch_batches(epoch)
        batch = batches[batch_index]
        bounds = np.linspace(0, len(batch), self.world + 1).round().astype(int)
        return batch[bounds[self.rank] : bounds[self.rank + 1]], epoch, batch_index + 1
